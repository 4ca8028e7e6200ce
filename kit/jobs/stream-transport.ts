/** One entry of a stream as delivered to a consumer of a group. */
export interface StreamEntry {
  /** The transport's id of the entry, increasing along the stream (Redis: "1700000000000-0"). */
  readonly id: string;
  /** The serialized protomesh.events.v1.Envelope. */
  readonly data: Uint8Array;
  /** How many times the entry has been delivered to the group, this delivery included. */
  readonly deliveries: number;
}

/** A snapshot of one stream and one of its consumer groups, for metrics and inspection. */
export interface StreamStats {
  /** Entries in the stream (acknowledged ones included, until trimmed). */
  readonly length: number;
  /** Entries delivered to the group and not yet acknowledged. */
  readonly pending: number;
  /** Idle time of the oldest pending entry in milliseconds, 0 when none is pending. */
  readonly oldestPendingMs: number;
  /** Entries in the stream's dead-letter stream. */
  readonly deadLettered: number;
}

/**
 * Append-only streams with consumer groups and at-least-once delivery: the contract that
 * the Redis Streams adapter and the in-process adapter both implement.
 */
export interface StreamTransport {
  /** Appends entries, in order, to a stream; resolves once they are stored. */
  append(stream: string, entries: readonly Uint8Array[]): Promise<void>;
  /** Creates the group, reading from the start of the stream, unless it exists. */
  ensureGroup(stream: string, group: string): Promise<void>;
  /**
   * Delivers up to `count` entries never delivered to the group before, waiting up to
   * `blockMs` for the first one; they stay pending to `consumer` until acknowledged.
   */
  readNew(
    stream: string,
    group: string,
    consumer: string,
    count: number,
    blockMs: number,
  ): Promise<StreamEntry[]>;
  /**
   * Takes over up to `count` entries pending for longer than `minIdleMs` (their consumer
   * crashed or hung) and delivers them to `consumer`.
   */
  claimIdle(
    stream: string,
    group: string,
    consumer: string,
    minIdleMs: number,
    count: number,
  ): Promise<StreamEntry[]>;
  /**
   * Delivers one pending entry again to `consumer` for a retry, if it has been idle for at
   * least `minIdleMs` (so an entry another consumer took over meanwhile is left alone).
   */
  redeliver(
    stream: string,
    group: string,
    consumer: string,
    id: string,
    minIdleMs: number,
  ): Promise<StreamEntry | undefined>;
  /** Acknowledges an entry: the group is done with it. */
  ack(stream: string, group: string, id: string): Promise<void>;
  /**
   * Appends `deadLetter` (a serialized protomesh.events.v1.DeadLetter) to the stream's
   * dead-letter stream and acknowledges the entry, atomically where the transport can.
   */
  deadLetter(stream: string, group: string, id: string, deadLetter: Uint8Array): Promise<void>;
  stats(stream: string, group: string): Promise<StreamStats>;
  /** The newest `count` entries of the stream's dead-letter stream, newest first. */
  deadLetters(stream: string, count: number): Promise<Uint8Array[]>;
  /** Stops blocking reads and releases connections. */
  close(): Promise<void>;
}

/** The name of the dead-letter stream of a stream. */
export function deadLetterStream(stream: string): string {
  return `${stream}:dead`;
}
