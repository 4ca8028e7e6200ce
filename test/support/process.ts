import { type ChildProcess, execFile, spawn } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { inject } from "vitest";
import { nodeBinary, repoRoot } from "./repo.ts";

/** One JSON log line a process wrote on stdout (pino format: msg, level, fields). */
export type LogLine = Record<string, unknown> & { readonly msg?: string };

/** A server process started from a built entry, listening on a port the OS chose. */
export interface StartedProcess {
  /** The port it listens on, read from its "listening" log line. */
  readonly port: number;
  /** Base URL for clients: http://127.0.0.1:<port>. */
  readonly url: string;
  readonly child: ChildProcess;
  /** Every JSON log line written to stdout so far. */
  readonly logs: LogLine[];
  /** Everything written to stderr so far. */
  stderr(): string;
  /** Resolves with the exit code (null if killed by a signal) once the process has exited. */
  readonly exited: Promise<number | null>;
  /** True until the process has exited. */
  running(): boolean;
  /** Sends a signal (SIGTERM by default) and resolves with the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/** Options of startProcess. */
export interface StartOptions {
  /** Environment variables on top of the defaults (PORT=0, HOST=127.0.0.1, LOG_FORMAT=json). */
  readonly env?: Readonly<Record<string, string>>;
  /** How long to wait for the "listening" line; generous for loaded machines. */
  readonly startTimeoutMs?: number;
}

const live = new Set<ChildProcess>();

// Last resort if a test run is torn down without its hooks: no server outlives the runner.
process.once("exit", () => {
  for (const child of live) child.kill("SIGKILL");
});

/**
 * The compiled file of `entry` (a path relative to dist/), which the end-to-end project's global
 * setup compiled from the checkout at the start of this run.
 */
export function distEntry(entry: string): string {
  if (inject("distBuiltAt") === undefined) {
    throw new Error(
      `${entry}: this test starts compiled code, so it belongs to the e2e project of vitest.config.ts, whose global setup compiles dist/`,
    );
  }
  return join(repoRoot, "dist", entry);
}

/** Starts `node dist/<entry>` on PORT=0, resolving at its "listening" line (else its output). */
export async function startProcess(
  entry: string,
  options: StartOptions = {},
): Promise<StartedProcess> {
  const script = distEntry(entry);
  const child = spawn(nodeBinary(), [script], {
    cwd: repoRoot,
    env: {
      ...process.env,
      PORT: "0",
      HOST: "127.0.0.1",
      LOG_FORMAT: "json",
      // Every process its own embedded database and mail folder: PGlite is single-process.
      DATA_DIR: mkdtempSync(join(tmpdir(), "protomesh-test-")),
      ...options.env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  live.add(child);
  const exited = new Promise<number | null>((resolve) => {
    child.once("exit", (code) => {
      live.delete(child);
      resolve(code);
    });
  });
  // A spawn failure (no binary) emits "error" and no "exit".
  child.once("error", () => live.delete(child));

  const logs: LogLine[] = [];
  let stderr = "";
  let onLine: ((line: LogLine) => void) | undefined;
  readLogLines(child, (line) => {
    logs.push(line);
    onLine?.(line);
  });
  child.stderr?.setEncoding("utf8");
  child.stderr?.on("data", (chunk: string) => {
    stderr += chunk;
  });

  const timeoutMs = options.startTimeoutMs ?? 30_000;
  const port = await new Promise<number>((resolve, reject) => {
    let settled = false;
    const fail = (why: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      child.kill("SIGKILL");
      reject(new Error(`${entry} ${why}\nstderr:\n${stderr}\nstdout:\n${JSON.stringify(logs)}`));
    };
    const timer = setTimeout(
      () => fail(`did not log "listening" within ${timeoutMs} ms`),
      timeoutMs,
    );
    child.once("error", (err) => fail(`could not be spawned: ${err.message}`));
    void exited.then((code) => fail(`exited with code ${code} before listening`));
    onLine = (line) => {
      if (line.msg !== "listening" || typeof line.address !== "string") return;
      const match = /:(\d+)$/.exec(line.address);
      if (!match || settled) return;
      settled = true;
      clearTimeout(timer);
      onLine = undefined;
      resolve(Number(match[1]));
    };
  });

  return {
    port,
    url: `http://127.0.0.1:${port}`,
    child,
    logs,
    stderr: () => stderr,
    exited,
    running: () => child.exitCode === null && child.signalCode === null,
    stop(signal = "SIGTERM") {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}

/** Kills (SIGKILL) every process startProcess started that is still running, and waits. */
export async function killAllProcesses(): Promise<void> {
  const children = [...live];
  await Promise.all(
    children.map(
      (child) =>
        new Promise<void>((resolve) => {
          if (child.exitCode !== null || child.signalCode !== null) return resolve();
          child.once("exit", () => resolve());
          child.kill("SIGKILL");
        }),
    ),
  );
}

/** What a finished command printed and its exit code. */
export interface CommandResult {
  readonly stdout: string;
  readonly stderr: string;
  /** The exit code; buf curl exits with 8 × the RPC error code on an RPC error. */
  readonly code: number;
}

/** Runs node_modules/.bin/buf with the given arguments and collects its output and exit code. */
export function runBuf(args: readonly string[], timeoutMs = 60_000): Promise<CommandResult> {
  const buf = join(repoRoot, "node_modules", ".bin", "buf");
  return new Promise((resolve, reject) => {
    execFile(
      buf,
      args,
      { cwd: repoRoot, timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 },
      (error, stdout, stderr) => {
        if (error === null) return resolve({ stdout, stderr, code: 0 });
        if (typeof error.code === "number") return resolve({ stdout, stderr, code: error.code });
        // Not an exit code: buf could not be run, or it was killed by the timeout.
        reject(new Error(`buf ${args.join(" ")} failed: ${error.message}\n${stderr}`));
      },
    );
  });
}

/** Parses a child's stdout as JSON log lines (a line that is not JSON becomes `{msg, unparsed}`). */
export function readLogLines(child: ChildProcess, onLine: (line: LogLine) => void): void {
  let rest = "";
  child.stdout?.setEncoding("utf8");
  child.stdout?.on("data", (chunk: string) => {
    const lines = (rest + chunk).split("\n");
    rest = lines.pop() ?? "";
    for (const text of lines) {
      if (text.trim() === "") continue;
      let line: LogLine;
      try {
        line = JSON.parse(text) as LogLine;
      } catch {
        line = { msg: text, unparsed: true };
      }
      onLine(line);
    }
  });
}
