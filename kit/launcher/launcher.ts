import { type ProcessStatus, writeStatusFile } from "./status-file.ts";
import {
  type ProcessSpec,
  type RestartPolicy,
  StartError,
  type SupervisedProcess,
  superviseProcess,
} from "./supervised-process.ts";

export { type ProcessSpec, type RestartPolicy, StartError } from "./supervised-process.ts";

/** Timing of the launcher: how long start-up and shutdown may take, and how it restarts. */
export interface LauncherOptions {
  readonly host: string;
  readonly startTimeoutMs: number;
  readonly stopTimeoutMs: number;
  readonly restart: RestartPolicy;
  /** Where the status of every process is kept up to date (see ProcessStatus). */
  readonly statusFile: string;
  /** Where prefixed log lines go (stdout by default). */
  readonly write?: (line: string) => void;
}

/** A running mesh: its processes, and a way to stop them all. */
export interface Mesh {
  /** Resolves once every process reports listening; rejects if one fails to start. */
  readonly ready: Promise<void>;
  /** Rejects when a process keeps crashing and the launcher has given up restarting it. */
  readonly failed: Promise<never>;
  status(): readonly ProcessStatus[];
  /** Asks every process to drain and waits for them (SIGKILL after the timeout). */
  stop(): Promise<void>;
  /** Kills every process at once (SIGKILL). */
  kill(): void;
}

const colours = [36, 33, 35, 32, 34, 31];

/**
 * Starts every process, prefixing each output line with the process name, and waits until
 * all listen. From then on a process that exits is restarted with exponential backoff.
 */
export function launchMesh(specs: readonly ProcessSpec[], options: LauncherOptions): Mesh {
  const write = options.write ?? ((line: string) => process.stdout.write(`${line}\n`));
  const width = Math.max(...specs.map((s) => s.name.length));
  const tty = process.stdout.isTTY === true;
  const prefix = (name: string, index: number) => {
    const label = name.padEnd(width);
    return tty ? `\x1b[${colours[index % colours.length]}m${label} |\x1b[0m` : `${label} |`;
  };

  let giveUp: (err: Error) => void = () => undefined;
  const failed = new Promise<never>((_, reject) => {
    giveUp = reject;
  });
  // Awaited by whoever supervises the mesh; until then it must not be unhandled.
  failed.catch(() => undefined);

  const processes: SupervisedProcess[] = [];
  const status = () => processes.map((p) => p.status());
  const onChange = () => writeStatusFile(options.statusFile, status());
  for (const [index, spec] of specs.entries()) {
    processes.push(
      superviseProcess(spec, {
        host: options.host,
        restart: options.restart,
        tag: prefix(spec.name, index),
        write,
        onChange,
        onGiveUp: (reason) => giveUp(new Error(reason)),
      }),
    );
  }

  const ready = Promise.all(processes.map((p) => listensWithin(p, options.startTimeoutMs))).then(
    () => {
      for (const p of processes) p.supervise();
    },
  );

  return {
    ready,
    failed,
    status,
    async stop() {
      await Promise.all(processes.map((p) => p.stop(options.stopTimeoutMs)));
    },
    kill() {
      for (const p of processes) p.kill();
    },
  };
}

async function listensWithin(child: SupervisedProcess, timeoutMs: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    const name = child.status().name;
    timer = setTimeout(
      () => reject(new StartError(`${name} was not ready within ${timeoutMs} ms`)),
      timeoutMs,
    );
  });
  try {
    await Promise.race([child.started, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
