import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { distEntry } from "./process.ts";
import { nodeBinary } from "./repo.ts";

/** The processes `npm start` runs, by the name the launcher gives them. */
export const meshProcesses = ["user", "task", "file", "inference", "gateway"] as const;
export type MeshProcess = (typeof meshProcesses)[number];

/** The whole mesh under its launcher, as `npm start` runs it, on ports the OS chose. */
export interface LaunchedMesh {
  readonly child: ChildProcess;
  readonly ports: Readonly<Record<MeshProcess, number>>;
  /** The mesh's DATA_DIR: databases, and mail as .eml files under mail/. */
  readonly dataDir: string;
  /** Everything the launcher wrote on stdout and stderr so far. */
  output(): string;
  /** Resolves with the launcher's exit code once it has exited. */
  readonly exit: Promise<number | null>;
}

/** A TCP port that was free a moment ago on 127.0.0.1. */
export async function freePort(): Promise<number> {
  const server = net.createServer();
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as net.AddressInfo;
  server.close();
  await once(server, "close");
  return port;
}

/** Polls `predicate` every 50 ms until it holds; rejects naming `what` after `timeoutMs`. */
export async function waitFor(predicate: () => boolean, timeoutMs: number, what: string) {
  const until = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > until) throw new Error(`${what} did not happen within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/**
 * Starts the launcher (dist/kit/launcher/main.js) with every port free and its own DATA_DIR,
 * and resolves once it has announced the mesh ready. The caller stops it (SIGINT, as Ctrl-C).
 */
export async function startMesh(env: Readonly<Record<string, string>> = {}): Promise<LaunchedMesh> {
  const ports = {} as Record<MeshProcess, number>;
  for (const name of meshProcesses) ports[name] = await freePort();
  const dataDir = mkdtempSync(join(tmpdir(), "protomesh-mesh-"));
  const child = spawn(nodeBinary(), [distEntry("kit/launcher/main.js")], {
    env: {
      ...process.env,
      ...Object.fromEntries(
        meshProcesses.map((n) => [`${n.toUpperCase()}_PORT`, String(ports[n])]),
      ),
      LOG_FORMAT: "json",
      DATA_DIR: dataDir,
      ...env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  const append = (chunk: Buffer) => {
    output += chunk.toString();
  };
  child.stdout?.on("data", append);
  child.stderr?.on("data", append);
  const exit = once(child, "exit").then(([code]) => code as number | null);
  const mesh = { child, ports, dataDir, output: () => output, exit };
  try {
    await waitFor(
      () => output.includes("mesh | ready") || child.exitCode !== null,
      90_000,
      "mesh | ready",
    );
  } catch (err) {
    child.kill("SIGKILL");
    throw err;
  }
  if (child.exitCode !== null)
    throw new Error(`the launcher exited before the mesh was ready:\n${output}`);
  return mesh;
}
