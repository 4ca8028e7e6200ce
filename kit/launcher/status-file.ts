import { mkdirSync, renameSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";

/** Where a supervised process is in its life. */
export type ProcessState = "starting" | "running" | "backoff" | "stopping" | "stopped" | "fatal";

/** How a process last ended: its exit code or the signal that killed it, and when. */
export interface ExitRecord {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  /** ISO 8601 time of the exit. */
  readonly at: string;
}

/** One line of DATA_DIR/mesh-status.json: what the launcher knows of one process. */
export interface ProcessStatus {
  readonly name: string;
  /** The pid of the current child, or null while none runs (backoff, stopped, fatal). */
  readonly pid: number | null;
  readonly state: ProcessState;
  /** How many times the launcher has restarted it since `npm start`. */
  readonly restarts: number;
  readonly lastExit: ExitRecord | null;
}

/**
 * Writes the mesh's status as JSON (`{"processes": [...]}`), through a temporary file and a
 * rename, so that a reader never sees half a document.
 */
export function writeStatusFile(path: string, processes: readonly ProcessStatus[]): void {
  mkdirSync(dirname(path), { recursive: true });
  const temporary = `${path}.${process.pid}.tmp`;
  writeFileSync(temporary, `${JSON.stringify({ processes }, null, 2)}\n`);
  renameSync(temporary, path);
}
