import { type ChildProcess, spawn } from "node:child_process";
import { createInterface } from "node:readline";
import type { Readable } from "node:stream";
import { drainMessage, isListening } from "./messages.ts";
import type { ExitRecord, ProcessState, ProcessStatus } from "./status-file.ts";

/** One process of the mesh: its name, its compiled entry and the port it listens on. */
export interface ProcessSpec {
  readonly name: string;
  /** Absolute path of the JavaScript entry to run with this Node binary. */
  readonly entry: string;
  readonly port: number;
  readonly env: Readonly<Record<string, string>>;
}

/** When and how often the launcher restarts a process that exits after start-up. */
export interface RestartPolicy {
  /** Delay before the first restart; it doubles with every consecutive one. */
  readonly backoffMs: number;
  /** The delay never grows past this. */
  readonly backoffMaxMs: number;
  /** Consecutive restarts that did not run `stableMs` before the launcher gives up. */
  readonly retries: number;
  /** A process that ran this long resets its backoff and its count of consecutive restarts. */
  readonly stableMs: number;
}

/** What a supervised process needs from the launcher. */
export interface SuperviseOptions {
  readonly host: string;
  readonly restart: RestartPolicy;
  /** The coloured, padded "name |" that starts each of its log lines. */
  readonly tag: string;
  readonly write: (line: string) => void;
  /** Called whenever its status changes. */
  readonly onChange: () => void;
  /** Called once the launcher has given up restarting it. */
  readonly onGiveUp: (reason: string) => void;
}

/** A child process of the mesh, restarted when it crashes once it has been started. */
export interface SupervisedProcess {
  /** Resolves when it first reports listening; rejects if it exits before the mesh is ready. */
  readonly started: Promise<void>;
  /** From now on an exit is a crash to restart, no longer a failed start. */
  supervise(): void;
  status(): ProcessStatus;
  /** Asks it to drain (IPC), kills it after `timeoutMs`, and resolves once it has exited. */
  stop(timeoutMs: number): Promise<void>;
  /** Kills it at once (SIGKILL), and restarts nothing more. */
  kill(): void;
}

/** The delay before restart number `attempt` (0-based) of a series of consecutive restarts. */
export function restartDelay(policy: RestartPolicy, attempt: number): number {
  return Math.min(policy.backoffMs * 2 ** attempt, policy.backoffMaxMs);
}

const recentLines = 20;

/** Spawns the process of `spec` and supervises it as the launcher of `npm start` does. */
export function superviseProcess(spec: ProcessSpec, options: SuperviseOptions): SupervisedProcess {
  const recent: string[] = [];
  let child: ChildProcess;
  let state: ProcessState = "starting";
  let supervised = false;
  let stopping = false;
  let restarts = 0;
  let consecutive = 0;
  let lastExit: ExitRecord | null = null;
  let spawnedAt = 0;
  let timer: NodeJS.Timeout | undefined;
  let exited = Promise.resolve();
  let resolveStarted: () => void = () => undefined;
  let rejectStarted: (err: Error) => void = () => undefined;
  const started = new Promise<void>((resolve, reject) => {
    resolveStarted = resolve;
    rejectStarted = reject;
  });
  // Until the launcher awaits it, a failed start must not be an unhandled rejection.
  started.catch(() => undefined);

  const alive = () => child.exitCode === null && child.signalCode === null;
  const setState = (next: ProcessState) => {
    state = next;
    options.onChange();
  };

  const run = () => {
    spawnedAt = performance.now();
    child = spawn(process.execPath, [spec.entry], {
      env: { ...process.env, ...spec.env, PORT: String(spec.port), HOST: options.host },
      // The IPC channel carries "listening" and drain requests, and tells a child when the
      // launcher is gone, even killed with SIGKILL.
      stdio: ["ignore", "pipe", "pipe", "ipc"],
    });
    // Piped above, so both are there.
    for (const stream of [child.stdout, child.stderr] as Readable[]) {
      createInterface({ input: stream }).on("line", (line) => {
        recent.push(line);
        if (recent.length > recentLines) recent.shift();
        options.write(`${options.tag} ${line}`);
      });
    }
    // A drain request to a child that is exiting at that moment fails: its exit follows.
    child.on("error", (err) => options.write(`mesh | ${spec.name}: ${err.message}`));
    child.on("message", (message) => {
      if (!isListening(message) || state !== "starting") return;
      setState("running");
      resolveStarted();
    });
    exited = new Promise((resolve) => {
      child.once("exit", (code, signal) => {
        onExit(code, signal);
        resolve();
      });
    });
    setState("starting");
  };

  const onExit = (code: number | null, signal: NodeJS.Signals | null) => {
    lastExit = { code, signal, at: new Date().toISOString() };
    const how = signal ?? `code ${code}`;
    if (stopping) return setState("stopped");
    if (!supervised) {
      setState("stopped");
      const tail = recent.slice(-5).join("\n  ");
      return rejectStarted(
        new StartError(`${spec.name} exited during start-up (${how}):\n  ${tail}`),
      );
    }
    if (performance.now() - spawnedAt >= options.restart.stableMs) consecutive = 0;
    if (consecutive >= options.restart.retries) {
      setState("fatal");
      return options.onGiveUp(
        `${spec.name} exited (${how}) and was restarted ${consecutive} times in a row without ` +
          `running ${options.restart.stableMs} ms: giving up on it`,
      );
    }
    const delay = restartDelay(options.restart, consecutive);
    consecutive += 1;
    options.write(
      `mesh | ${spec.name} exited (${how}); restarting in ${delay} ms ` +
        `(attempt ${consecutive} of ${options.restart.retries})`,
    );
    setState("backoff");
    timer = setTimeout(() => {
      restarts += 1;
      run();
      options.write(`mesh | ${spec.name} restarted (pid ${child.pid}, restart ${restarts})`);
    }, delay);
  };

  run();

  return {
    started,
    supervise() {
      supervised = true;
    },
    status: () => ({
      name: spec.name,
      pid: alive() ? (child.pid ?? null) : null,
      state,
      restarts,
      lastExit,
    }),
    async stop(timeoutMs) {
      stopping = true;
      clearTimeout(timer);
      if (!alive()) {
        if (state === "backoff") setState("stopped");
        return;
      }
      const listening = state === "running";
      setState("stopping");
      // A request, not a signal: a child that got the terminal's SIGINT too drains only once.
      // One that does not listen yet takes no requests; SIGTERM stops it where it is.
      if (listening && child.connected) child.send(drainMessage);
      else child.kill("SIGTERM");
      const killer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
      await exited;
      clearTimeout(killer);
    },
    kill() {
      stopping = true;
      clearTimeout(timer);
      if (alive()) child.kill("SIGKILL");
    },
  };
}

/** Thrown when a process of the mesh cannot start. */
export class StartError extends Error {
  override readonly name = "StartError";
}
