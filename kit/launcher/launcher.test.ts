import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { freePort } from "../../test/support/mesh.ts";

// The launcher runs the compiled mesh; `npm test` builds dist/ first.
const launcher = fileURLToPath(new URL("../../dist/kit/launcher/main.js", import.meta.url));
const running: ChildProcess[] = [];

afterEach(() => {
  for (const child of running.splice(0)) child.kill("SIGKILL");
});

async function meshEnv(): Promise<Record<string, string>> {
  return {
    USER_PORT: String(await freePort()),
    TASK_PORT: String(await freePort()),
    FILE_PORT: String(await freePort()),
    INFERENCE_PORT: String(await freePort()),
    GATEWAY_PORT: String(await freePort()),
    LOG_FORMAT: "json",
    DATA_DIR: mkdtempSync(join(tmpdir(), "protomesh-mesh-")),
  };
}

function start(env: Record<string, string>) {
  const child = spawn(process.execPath, [launcher], {
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  running.push(child);
  let output = "";
  child.stdout?.on("data", (chunk: Buffer) => {
    output += chunk.toString();
  });
  child.stderr?.on("data", (chunk: Buffer) => {
    output += chunk.toString();
  });
  const exit = once(child, "exit").then(([code]) => code as number | null);
  return { child, exit, output: () => output };
}

async function waitFor(predicate: () => boolean, timeoutMs: number): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > until) throw new Error("timed out");
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe("npm start launcher", () => {
  it("starts the four services and the gateway, prefixes their logs and stops them on SIGINT", {
    timeout: 90_000,
  }, async () => {
    const env = await meshEnv();
    const mesh = start(env);
    await waitFor(() => mesh.output().includes("mesh | ready"), 60_000);
    for (const [name, variable] of [
      ["user", "USER_PORT"],
      ["task", "TASK_PORT"],
      ["file", "FILE_PORT"],
      ["inference", "INFERENCE_PORT"],
      ["gateway", "GATEWAY_PORT"],
    ] as const) {
      const res = await fetch(`http://127.0.0.1:${env[variable]}/readyz`);
      expect(res.status, name).toBe(200);
      expect(mesh.output()).toMatch(new RegExp(`^${name} +\\| \\{.*"msg":"listening"`, "m"));
    }
    mesh.child.kill("SIGINT");
    expect(await mesh.exit).toBe(0);
    const refused = await fetch(`http://127.0.0.1:${env.USER_PORT}/healthz`).catch(() => null);
    expect(refused).toBeNull();
  });

  it("leaves no process running when the launcher itself is killed with SIGKILL", {
    timeout: 90_000,
  }, async () => {
    const env = await meshEnv();
    const mesh = start(env);
    await waitFor(() => mesh.output().includes("mesh | ready"), 60_000);
    // Every child's log lines carry its pid.
    const pids = [...mesh.output().matchAll(/"pid":(\d+),[^\n]*"msg":"listening"/g)].map((m) =>
      Number(m[1]),
    );
    expect(pids).toHaveLength(5);
    mesh.child.kill("SIGKILL");
    await mesh.exit;
    const alive = () =>
      pids.filter((pid) => {
        try {
          process.kill(pid, 0);
          return true;
        } catch {
          return false;
        }
      });
    // Each child drains (its grace period at most) and exits: none is left behind, even one
    // whose output nobody reads any more.
    const until = Date.now() + 20_000;
    while (alive().length > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 200));
    expect(alive()).toEqual([]);
  });

  it("exits non-zero naming the service whose port is taken, and leaves nothing running", async () => {
    const env = await meshEnv();
    const squatter = net.createServer().listen(Number(env.TASK_PORT), "127.0.0.1");
    await once(squatter, "listening");
    try {
      const mesh = start(env);
      expect(await mesh.exit).toBe(1);
      expect(mesh.output()).toContain("task exited during start-up");
      expect(mesh.output()).toContain(`127.0.0.1:${env.TASK_PORT} is already in use`);
      const user = await fetch(`http://127.0.0.1:${env.USER_PORT}/healthz`).catch(() => null);
      expect(user).toBeNull();
    } finally {
      squatter.close();
    }
  });

  it("rejects a bad port setting with a message naming the variable", async () => {
    const mesh = start({ ...(await meshEnv()), FILE_PORT: "eighty" });
    expect(await mesh.exit).toBe(2);
    expect(mesh.output()).toContain("FILE_PORT");
  });
});
