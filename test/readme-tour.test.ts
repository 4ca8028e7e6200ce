// The README's tour, run as written: every command block of "A short tour" is read from
// README.md itself and run against a mesh started by the launcher, so the two cannot drift.
import { exec } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type MeshEnv, meshEnv, startMesh } from "./support/mesh.ts";
import { repoRoot } from "./support/repo.ts";
import { verificationTokenOf, waitForEml } from "./support/user-service.ts";

/** One command of the tour, and the JSON its comment says it prints, if any. */
interface TourCommand {
  readonly line: string;
  readonly expected?: Record<string, unknown>;
}

/** The ports the README names, as `npm start` uses them by default. */
const readmePorts: Record<number, keyof MeshEnv> = {
  8080: "GATEWAY_PORT",
  50051: "USER_PORT",
  50052: "TASK_PORT",
  50053: "FILE_PORT",
  50054: "INFERENCE_PORT",
};

/** The ```sh blocks of the README's "A short tour" section, as commands with continuations joined. */
function tourBlocks(): TourCommand[][] {
  const readme = readFileSync(join(repoRoot, "README.md"), "utf8");
  const section = /^## A short tour\n([\s\S]*?)^## /m.exec(readme)?.[1];
  if (section === undefined) throw new Error('README.md has no "## A short tour" section');
  return [...section.matchAll(/^```sh\n([\s\S]*?)^```$/gm)].map(([, body = ""]) => {
    const commands: TourCommand[] = [];
    for (const line of body.replaceAll("\\\n", " ").split("\n")) {
      const expected = /^# (\{.*\})$/.exec(line.trim())?.[1];
      const last = commands.at(-1);
      if (expected !== undefined && last !== undefined) {
        commands[commands.length - 1] = { ...last, expected: JSON.parse(expected) };
      } else if (line.trim() !== "" && !line.trim().startsWith("#")) {
        commands.push({ line: line.replace(/\s+#.*$/, "").trim() });
      }
    }
    return commands;
  });
}

const run = promisify(exec);
let env: MeshEnv;
let mesh: ReturnType<typeof startMesh>;

beforeAll(async () => {
  env = await meshEnv();
  mesh = startMesh(env);
  await mesh.ready();
});

afterAll(async () => {
  mesh.child.kill("SIGINT");
  await mesh.exit;
});

describe("the README's tour", () => {
  it("runs as written against `npm start`, every command succeeding", {
    timeout: 240_000,
  }, async () => {
    const blocks = tourBlocks();
    expect(blocks.length).toBeGreaterThan(0);
    let accessToken: string | undefined;
    let registered: string | undefined;
    const ran: string[] = [];
    for (const block of blocks) {
      const assignments: string[] = [];
      for (const { line, expected } of block) {
        let command = line.replace(/127\.0\.0\.1:(\d+)/g, (address, port: string) => {
          const name = readmePorts[Number(port)];
          return name === undefined ? address : `127.0.0.1:${env[name]}`;
        });
        if (/^[A-Z_]+=\S+$/.test(command)) {
          assignments.push(command);
          continue;
        }
        if (command.includes("<accessToken>")) {
          if (accessToken === undefined) throw new Error(`${line}: no login came before it`);
          command = command.replaceAll("<accessToken>", accessToken);
        }
        if (command.includes("<token from the mail>")) {
          if (registered === undefined) throw new Error(`${line}: no registration came before it`);
          const mail = await waitForEml(join(env.DATA_DIR, "mail"), registered);
          command = command.replaceAll("<token from the mail>", verificationTokenOf(mail));
        }
        // curl exits 0 on an HTTP error unless asked not to.
        command = command.replace(/^curl /, "curl -sS --fail-with-body ");
        const result = await run([...assignments, command].join("\n"), {
          cwd: repoRoot,
          shell: "/bin/bash",
          timeout: 60_000,
        }).then(
          ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
          (err: { code?: number; stdout?: string; stderr?: string }) => ({
            code: err.code ?? -1,
            stdout: err.stdout ?? "",
            stderr: err.stderr ?? "",
          }),
        );
        const output = `${result.stdout}${result.stderr}`;
        if (expected === undefined) {
          expect(result.code, `${line}\n${output}`).toBe(0);
        } else {
          expect(JSON.parse(output), line).toMatchObject(expected);
        }
        if (/register/i.test(command)) {
          registered = /"email":"([^"]+)"/.exec(command)?.[1] ?? registered;
        }
        accessToken = /"accessToken":\s*"([^"]+)"/.exec(result.stdout)?.[1] ?? accessToken;
        ran.push(line);
      }
    }
    expect(ran.length).toBeGreaterThan(10);
  });

  it("sends a verification mail whose command works as written, on the gateway's own port", async () => {
    const gateway = `http://127.0.0.1:${env.GATEWAY_PORT}`;
    const email = "mail-command@example.com";
    const registration = await fetch(`${gateway}/v1/auth/register`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ email, password: "correct horse", displayName: "Mail" }),
    });
    expect(registration.status).toBe(200);
    const mail = await waitForEml(join(env.DATA_DIR, "mail"), email);
    const command = /^ {4}(curl .*)$/m.exec(mail.text ?? "")?.[1];
    expect(command, mail.text).toContain(`${gateway}/v1/auth/verify-email`);
    const { stdout } = await run(`${command} -sS --fail-with-body`, { shell: "/bin/bash" });
    expect(JSON.parse(stdout)).toMatchObject({ email, emailVerified: true });
  });
});
