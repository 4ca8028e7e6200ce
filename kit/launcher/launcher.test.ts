import { once } from "node:events";
import http from "node:http";
import net from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import {
  alivePids,
  killMeshes,
  meshEnv,
  meshPids,
  startMesh as start,
  waitFor,
} from "../../test/support/mesh.ts";

afterEach(killMeshes);

describe("npm start launcher", () => {
  it("starts the four services and the gateway, prefixes their logs and stops them on SIGINT", {
    timeout: 90_000,
  }, async () => {
    const env = await meshEnv();
    const mesh = start(env);
    await mesh.ready();
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
    await mesh.ready();
    // Every child's log lines carry its pid.
    const pids = meshPids(mesh.output());
    expect(pids).toHaveLength(5);
    mesh.child.kill("SIGKILL");
    await mesh.exit;
    // Each child drains (its grace period at most) and exits: none is left behind, even one
    // whose output nobody reads any more.
    const until = Date.now() + 20_000;
    while (alivePids(pids).length > 0 && Date.now() < until) {
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(alivePids(pids)).toEqual([]);
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
    const mesh = start(await meshEnv({ FILE_PORT: "eighty" }));
    expect(await mesh.exit).toBe(2);
    expect(mesh.output()).toContain("FILE_PORT");
  });

  it("fails the start when a process exits during start-up, even if its port answers /readyz", async () => {
    const env = await meshEnv();
    const impostor = http
      .createServer((_req, res) => res.end("ready\n"))
      .listen(Number(env.GATEWAY_PORT), "127.0.0.1");
    await once(impostor, "listening");
    try {
      const mesh = start(env);
      await waitFor(
        () => mesh.child.exitCode !== null || mesh.output().includes("mesh | ready"),
        60_000,
        "the launcher to exit or announce the mesh ready",
      );
      expect(mesh.output()).not.toContain("mesh | ready");
      expect(await mesh.exit).toBe(1);
      expect(mesh.output()).toContain("gateway exited during start-up");
    } finally {
      impostor.close();
    }
  });
});
