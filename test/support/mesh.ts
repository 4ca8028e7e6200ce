import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, readFileSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ProcessStatus } from "../../kit/launcher/status-file.ts";
import { distEntry } from "./process.ts";
import { nodeBinary, repoRoot } from "./repo.ts";

/** The launcher of `npm start` (dist/kit/launcher/main.js), running in a test. */
export interface StartedMesh {
  readonly child: ChildProcess;
  /** Resolves with the launcher's exit code. */
  readonly exit: Promise<number | null>;
  /** Everything the launcher wrote, stdout and stderr interleaved. */
  output(): string;
  /** Resolves once the launcher has announced the mesh ready. */
  ready(): Promise<void>;
  /** The launcher's DATA_DIR/mesh-status.json, parsed. */
  status(): readonly ProcessStatus[];
}

const running: { child: ChildProcess; group: boolean }[] = [];

/** A TCP port that was free a moment ago. */
export async function freePort(): Promise<number> {
  const server = net.createServer();
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as net.AddressInfo;
  server.close();
  await once(server, "close");
  return port;
}

/** The settings every test mesh gets: its ports and its DATA_DIR. */
export type MeshEnv = Readonly<
  Record<
    "USER_PORT" | "TASK_PORT" | "FILE_PORT" | "INFERENCE_PORT" | "GATEWAY_PORT" | "DATA_DIR",
    string
  > &
    Record<string, string>
>;

/** Free ports for every process, JSON logs and a fresh DATA_DIR, then `extra`. */
export async function meshEnv(extra: Record<string, string> = {}): Promise<MeshEnv> {
  return {
    USER_PORT: String(await freePort()),
    TASK_PORT: String(await freePort()),
    FILE_PORT: String(await freePort()),
    INFERENCE_PORT: String(await freePort()),
    GATEWAY_PORT: String(await freePort()),
    LOG_FORMAT: "json",
    DATA_DIR: mkdtempSync(join(tmpdir(), "protomesh-mesh-")),
    ...extra,
  };
}

/**
 * Starts the launcher with `env`. `detached` puts it in a process group of its own, with its
 * children, as a terminal does with `npm start`, so that the test can signal the whole group.
 */
export function startMesh(env: MeshEnv, options: { detached?: boolean } = {}) {
  const child = spawn(nodeBinary(), [distEntry("kit/launcher/main.js")], {
    cwd: repoRoot,
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
    detached: options.detached === true,
  });
  running.push({ child, group: options.detached === true });
  let output = "";
  for (const stream of [child.stdout, child.stderr]) {
    stream?.on("data", (chunk: Buffer) => {
      output += chunk.toString();
    });
  }
  const exit = once(child, "exit").then(([code]) => code as number | null);
  const statusFile = join(env.DATA_DIR, "mesh-status.json");
  return {
    child,
    exit,
    output: () => output,
    ready: () => waitFor(() => output.includes("mesh | ready"), 60_000, "the mesh to be ready"),
    status: () =>
      (JSON.parse(readFileSync(statusFile, "utf8")) as { processes: ProcessStatus[] }).processes,
  } satisfies StartedMesh;
}

/** Kills every launcher started so far, and its process group if it has one. */
export function killMeshes(): void {
  for (const { child, group } of running.splice(0)) {
    if (child.pid === undefined) continue;
    try {
      // A negative pid is the process group the detached launcher leads.
      process.kill(group ? -child.pid : child.pid, "SIGKILL");
    } catch {
      // Already gone.
    }
  }
}

/** Waits until `predicate` holds, polling; throws naming `what` after `timeoutMs`. */
export async function waitFor(
  predicate: () => boolean,
  timeoutMs: number,
  what = "the condition",
): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** The pid a process of the mesh logged with its "listening" line (JSON logs). */
export function listeningPids(output: string, name: string): number[] {
  const line = new RegExp(`^${name} +\\| \\{"[^\\n]*"pid":(\\d+),[^\\n]*"msg":"listening"`, "gm");
  return [...output.matchAll(line)].map((m) => Number(m[1]));
}

/** The pids of every process of the mesh, from their "listening" lines (JSON logs). */
export function meshPids(output: string): number[] {
  return ["user", "task", "file", "inference", "gateway"].flatMap((name) =>
    listeningPids(output, name),
  );
}

/** The ones of `pids` that are still running. */
export function alivePids(pids: readonly number[]): number[] {
  return pids.filter((pid) => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  });
}
