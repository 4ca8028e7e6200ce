import { type Logger, pino } from "pino";
import pretty from "pino-pretty";

/** The structured logger every protomesh process writes with (pino). */
export type Log = Logger;

/** How a process logs: its name, the minimum level, and JSON or human-readable lines. */
export interface LogOptions {
  readonly name: string;
  readonly level: string;
  /** "pretty" for people, "json" for machines; by default pretty only on a terminal. */
  readonly format?: "json" | "pretty" | undefined;
}

/** Creates the process logger: JSON lines, or colourised lines when a person is watching. */
export function createLogger(options: LogOptions): Log {
  const format = options.format ?? (process.stdout.isTTY ? "pretty" : "json");
  const base = { name: options.name, level: options.level };
  // Written synchronously: nothing is left buffered at exit, and once nobody reads the output
  // (the launcher was killed) pino stops writing instead of retrying the broken pipe forever.
  if (format === "json") return pino(base, pino.destination({ fd: 1, sync: true }));
  return pino(base, pretty({ sync: true, ignore: "pid,hostname,name" }));
}
