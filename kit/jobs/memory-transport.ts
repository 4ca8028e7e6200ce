import {
  deadLetterStream,
  type StreamEntry,
  type StreamStats,
  type StreamTransport,
} from "./stream-transport.ts";

interface PendingEntry {
  consumer: string;
  deliveries: number;
  deliveredAt: number;
}

interface Group {
  /** Sequence number of the last entry delivered as new. */
  lastDelivered: number;
  readonly pending: Map<number, PendingEntry>;
}

interface Stream {
  /** Entries by sequence number, in order; the oldest are dropped past `maxLen`. */
  readonly entries: Map<number, Uint8Array>;
  next: number;
  readonly groups: Map<string, Group>;
  /** Blocked readers waiting for the next append. */
  readonly waiters: Set<() => void>;
}

/** Options of the in-process transport. */
export interface MemoryTransportOptions {
  /** Entries kept per stream; older ones are dropped, as Redis' MAXLEN does. */
  readonly maxLen?: number;
  /** Milliseconds since an arbitrary origin; a test can pass a manual clock. */
  readonly now?: () => number;
}

/**
 * The in-process transport: the same at-least-once contract as Redis Streams (groups,
 * pending entries, take-over of idle entries, dead letters) for one process and no Redis.
 * Events live in memory; the outbox in the database is what survives a restart.
 */
export function createMemoryTransport(options: MemoryTransportOptions = {}): StreamTransport {
  const maxLen = options.maxLen ?? 100_000;
  const now = options.now ?? (() => performance.now());
  const streams = new Map<string, Stream>();
  let closed = false;

  const streamOf = (name: string): Stream => {
    let stream = streams.get(name);
    if (!stream) {
      stream = { entries: new Map(), next: 1, groups: new Map(), waiters: new Set() };
      streams.set(name, stream);
    }
    return stream;
  };
  const groupOf = (name: string, group: string): Group => {
    const found = streamOf(name).groups.get(group);
    if (!found) throw new Error(`NOGROUP: no group "${group}" on stream "${name}"`);
    return found;
  };
  const append = (name: string, data: Uint8Array) => {
    const stream = streamOf(name);
    stream.entries.set(stream.next++, data);
    for (const seq of stream.entries.keys()) {
      if (stream.entries.size <= maxLen) break;
      stream.entries.delete(seq);
    }
  };
  const deliver = (stream: Stream, group: Group, seq: number, consumer: string) => {
    const data = stream.entries.get(seq);
    const previous = group.pending.get(seq);
    // An entry trimmed away while pending cannot be delivered again; drop it, as Redis does.
    if (!data) {
      group.pending.delete(seq);
      return undefined;
    }
    const deliveries = (previous?.deliveries ?? 0) + 1;
    group.pending.set(seq, { consumer, deliveries, deliveredAt: now() });
    return { id: String(seq), data, deliveries } satisfies StreamEntry;
  };

  return {
    async append(name, entries) {
      for (const data of entries) append(name, data);
      const stream = streamOf(name);
      for (const wake of stream.waiters) wake();
      stream.waiters.clear();
    },
    async ensureGroup(name, group) {
      const stream = streamOf(name);
      if (!stream.groups.has(group))
        stream.groups.set(group, { lastDelivered: 0, pending: new Map() });
    },
    async readNew(name, groupName, consumer, count, blockMs) {
      const stream = streamOf(name);
      const group = groupOf(name, groupName);
      const take = () => {
        const taken: StreamEntry[] = [];
        for (const seq of stream.entries.keys()) {
          if (taken.length >= count) break;
          if (seq <= group.lastDelivered) continue;
          group.lastDelivered = seq;
          const entry = deliver(stream, group, seq, consumer);
          if (entry) taken.push(entry);
        }
        return taken;
      };
      const ready = take();
      if (ready.length > 0 || blockMs <= 0 || closed) return ready;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, blockMs);
        function done() {
          clearTimeout(timer);
          stream.waiters.delete(done);
          resolve();
        }
        stream.waiters.add(done);
      });
      return take();
    },
    async claimIdle(name, groupName, consumer, minIdleMs, count) {
      const stream = streamOf(name);
      const group = groupOf(name, groupName);
      const claimed: StreamEntry[] = [];
      for (const [seq, pending] of [...group.pending].sort(([a], [b]) => a - b)) {
        if (claimed.length >= count) break;
        if (now() - pending.deliveredAt < minIdleMs) continue;
        const entry = deliver(stream, group, seq, consumer);
        if (entry) claimed.push(entry);
      }
      return claimed;
    },
    async redeliver(name, groupName, consumer, id, minIdleMs) {
      const group = groupOf(name, groupName);
      const seq = Number(id);
      const pending = group.pending.get(seq);
      if (!pending || now() - pending.deliveredAt < minIdleMs) return undefined;
      return deliver(streamOf(name), group, seq, consumer);
    },
    async ack(name, groupName, id) {
      groupOf(name, groupName).pending.delete(Number(id));
    },
    async deadLetter(name, groupName, id, deadLetter) {
      append(deadLetterStream(name), deadLetter);
      groupOf(name, groupName).pending.delete(Number(id));
    },
    async stats(name, groupName): Promise<StreamStats> {
      const stream = streams.get(name);
      const group = stream?.groups.get(groupName);
      const oldest = group
        ? Math.min(...[...group.pending.values()].map((p) => p.deliveredAt))
        : Number.POSITIVE_INFINITY;
      return {
        length: stream?.entries.size ?? 0,
        pending: group?.pending.size ?? 0,
        oldestPendingMs: Number.isFinite(oldest) ? Math.max(0, now() - oldest) : 0,
        deadLettered: streams.get(deadLetterStream(name))?.entries.size ?? 0,
      };
    },
    async deadLetters(name, count) {
      const dead = streams.get(deadLetterStream(name));
      return dead ? [...dead.entries.values()].reverse().slice(0, count) : [];
    },
    async close() {
      closed = true;
      for (const stream of streams.values()) {
        for (const wake of stream.waiters) wake();
        stream.waiters.clear();
      }
    },
  };
}
