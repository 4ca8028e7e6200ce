import { spawn } from "node:child_process";
import net from "node:net";
import { setTimeout as sleep } from "node:timers/promises";

/** A server process the bench started on one core, listening on 127.0.0.1. */
export interface PinnedProcess {
  readonly pid: number;
  readonly port: number;
  /** http://127.0.0.1:<port> */
  readonly url: string;
  /** Sends SIGTERM and waits for the process to exit (a profiled Node process writes then). */
  stop(): Promise<void>;
}

/** What to run, where, and how it learns its port (PORT in its environment, or its arguments). */
export interface PinnedOptions {
  /** A name for error messages. */
  readonly name: string;
  /** Builds the program and its arguments once the port is known. */
  readonly command: (port: number) => readonly [string, ...string[]];
  /** Variables on top of this process's environment and PORT. */
  readonly env?: Readonly<Record<string, string>>;
  readonly core: number;
}

const live = new Set<() => void>();
// If the bench dies on an error, no server outlives it.
process.once("exit", () => {
  for (const kill of live) kill();
});

/**
 * Starts a server under `taskset -c <core>` (taskset execs it, so every thread it ever has runs
 * on that core and the pid is the server's own) and resolves once its port takes connections.
 * The bench picks the port: its servers log at warn level, so none announces where it listens.
 */
export async function startPinned(options: PinnedOptions): Promise<PinnedProcess> {
  const port = await freePort();
  const child = spawn("taskset", ["-c", String(options.core), ...options.command(port)], {
    env: { ...process.env, PORT: String(port), ...options.env },
    stdio: ["ignore", "ignore", "pipe"],
  });
  let stderr = "";
  child.stderr.setEncoding("utf8");
  child.stderr.on("data", (chunk: string) => {
    stderr += chunk;
  });
  const running = () => child.exitCode === null && child.signalCode === null;
  const exited = new Promise<void>((resolve) => child.once("close", () => resolve()));
  const kill = () => child.kill("SIGKILL");
  live.add(kill);
  void exited.then(() => live.delete(kill));

  for (let attempt = 0; !(await accepts(port)); attempt++) {
    if (!running()) throw new Error(`${options.name} exited at start:\n${stderr}`);
    if (attempt === 300) {
      kill();
      throw new Error(`${options.name} did not listen on port ${port} within 15 s:\n${stderr}`);
    }
    await sleep(50);
  }
  return {
    pid: child.pid as number,
    port,
    url: `http://127.0.0.1:${port}`,
    async stop() {
      if (running()) child.kill("SIGTERM");
      await exited;
    },
  };
}

/** A port that was free a moment ago, picked by the OS. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = net.createServer().listen(0, "127.0.0.1", () => {
      const { port } = probe.address() as net.AddressInfo;
      probe.close(() => resolve(port));
    });
    probe.once("error", reject);
  });
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, "127.0.0.1");
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}
