import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { createInterface } from "node:readline";
import type { Readable } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";

/** One process of the mesh: its name, its compiled entry and where its readiness is probed. */
export interface ProcessSpec {
  readonly name: string;
  /** Absolute path of the JavaScript entry to run with this Node binary. */
  readonly entry: string;
  readonly port: number;
  readonly env: Readonly<Record<string, string>>;
}

/** Timing of the launcher: how long start-up and shutdown may take. */
export interface LauncherOptions {
  readonly host: string;
  readonly startTimeoutMs: number;
  readonly stopTimeoutMs: number;
  /** Where prefixed log lines go (stdout by default). */
  readonly write?: (line: string) => void;
}

/** A running mesh: its processes, and a way to stop them all. */
export interface Mesh {
  /** Resolves once every process reports ready on /readyz; rejects if one fails to start. */
  readonly ready: Promise<void>;
  /** Sends SIGTERM to every process, waits for them (SIGKILL after the timeout). */
  stop(): Promise<void>;
}

const colours = [36, 33, 35, 32, 34, 31];

/** Thrown when a process of the mesh cannot start. */
export class StartError extends Error {
  override readonly name = "StartError";
}

/**
 * Starts every process, prefixing each output line with the process name, and waits until
 * all are ready. A process that exits after start-up is reported; the others keep running.
 */
export function launchMesh(specs: readonly ProcessSpec[], options: LauncherOptions): Mesh {
  const write = options.write ?? ((line: string) => process.stdout.write(`${line}\n`));
  const width = Math.max(...specs.map((s) => s.name.length));
  const tty = process.stdout.isTTY === true;
  const children = new Map<string, ChildProcess>();
  let stopping = false;

  const prefix = (name: string, index: number) => {
    const label = name.padEnd(width);
    return tty ? `\x1b[${colours[index % colours.length]}m${label} |\x1b[0m` : `${label} |`;
  };

  const started = specs.map((spec, index) => {
    const child = spawn(process.execPath, [spec.entry], {
      env: { ...process.env, ...spec.env, PORT: String(spec.port), HOST: options.host },
      // The IPC channel tells a child when the launcher is gone, even killed with SIGKILL.
      stdio: ["ignore", "pipe", "pipe", "ipc"],
    });
    children.set(spec.name, child);
    const tag = prefix(spec.name, index);
    const recent: string[] = [];
    // Piped above, so both are there.
    for (const stream of [child.stdout, child.stderr] as Readable[]) {
      createInterface({ input: stream }).on("line", (line) => {
        recent.push(line);
        if (recent.length > 20) recent.shift();
        write(`${tag} ${line}`);
      });
    }
    const exited = once(child, "exit") as Promise<[number | null, NodeJS.Signals | null]>;
    void exited.then(([code, signal]) => {
      if (!stopping) write(`mesh | ${spec.name} exited (${signal ?? `code ${code}`})`);
    });
    return { spec, exited, recent };
  });

  const ready = Promise.all(
    started.map(async ({ spec, exited, recent }) => {
      const deadline = Date.now() + options.startTimeoutMs;
      const dead = exited.then(([code, signal]) => {
        const tail = recent.slice(-5).join("\n  ");
        throw new StartError(
          `${spec.name} exited during start-up (${signal ?? `code ${code}`}):\n  ${tail}`,
        );
      });
      // Until it has exited, the rejection of `dead` is awaited below.
      dead.catch(() => undefined);
      while (Date.now() < deadline) {
        const probe = await Promise.race([isReady(options.host, spec.port), dead]);
        if (probe) return;
        await Promise.race([sleep(100), dead]);
      }
      throw new StartError(`${spec.name} was not ready within ${options.startTimeoutMs} ms`);
    }),
  ).then(() => undefined);

  return {
    ready,
    async stop() {
      stopping = true;
      await Promise.all(
        started.map(async ({ spec, exited }) => {
          const child = children.get(spec.name);
          if (!child || child.exitCode !== null || child.signalCode !== null) return;
          child.kill("SIGTERM");
          const timer = setTimeout(() => child.kill("SIGKILL"), options.stopTimeoutMs);
          await exited;
          clearTimeout(timer);
        }),
      );
    },
  };
}

async function isReady(host: string, port: number): Promise<boolean> {
  try {
    const res = await fetch(`http://${host}:${port}/readyz`, { signal: AbortSignal.timeout(1000) });
    await res.body?.cancel();
    return res.ok;
  } catch {
    return false;
  }
}
