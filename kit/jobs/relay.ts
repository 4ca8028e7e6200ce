import type { Database } from "../db/database.ts";
import type { Log } from "../log.ts";
import type { JobMetrics } from "./job-metrics.ts";
import type { StreamTransport } from "./stream-transport.ts";

/** Moves committed events from the outbox to their streams, in order per stream. */
export interface OutboxRelay {
  /** Starts relaying in the background. */
  start(): void;
  /** Relays what is in the outbox now, one batch; resolves with the number relayed. */
  flush(): Promise<number>;
  /** Hints that an event was just committed, so it goes out without waiting for the poll. */
  wake(): void;
  /** Stops after the batch in progress. */
  stop(): Promise<void>;
}

/** How the relay runs. */
export interface OutboxRelayOptions {
  readonly db: Database;
  readonly transport: StreamTransport;
  readonly log: Log;
  readonly metrics?: JobMetrics | undefined;
  /** How often the outbox is polled when idle. */
  readonly pollMs?: number;
  readonly batchSize?: number;
}

// Any constant works; it only has to be the same in every process relaying this database.
const relayLockKey = 7_352_001;

/**
 * Creates the relay. A batch is read, appended and deleted in one transaction, under an
 * advisory lock so that one relay at a time works on a database: if appending fails (Redis
 * unreachable) nothing is deleted and the batch is retried with backoff, so no event is lost;
 * a crash after appending and before committing sends a batch twice, which consumers absorb.
 */
export function createOutboxRelay(options: OutboxRelayOptions): OutboxRelay {
  const { db, transport, log } = options;
  const pollMs = options.pollMs ?? 200;
  const batchSize = options.batchSize ?? 500;
  let running: Promise<void> | undefined;
  let stopping = false;
  let wakeUp: (() => void) | undefined;

  async function flush(): Promise<number> {
    return db.fork().transactional(async (em) => {
      const [lock] = await em.execute<{ locked: boolean }[]>(
        "select pg_try_advisory_xact_lock(?) as locked",
        [relayLockKey],
      );
      if (!lock?.locked) return 0;
      const rows = await em.execute<{ seq: string; stream: string; envelope: Uint8Array }[]>(
        "select seq, stream, envelope from outbox_event order by seq limit ?",
        [batchSize],
      );
      if (rows.length === 0) return 0;
      const byStream = new Map<string, Uint8Array[]>();
      for (const row of rows) {
        const entries = byStream.get(row.stream) ?? [];
        entries.push(row.envelope);
        byStream.set(row.stream, entries);
      }
      for (const [stream, entries] of byStream) {
        await transport.append(stream, entries);
        options.metrics?.relayed.inc({ stream }, entries.length);
      }
      // Delete exactly what was sent: a row with a lower seq that committed after the read
      // must wait for the next batch, not vanish.
      await em.execute("delete from outbox_event where seq in (?)", [rows.map((row) => row.seq)]);
      return rows.length;
    });
  }

  async function loop(): Promise<void> {
    let failures = 0;
    while (!stopping) {
      let relayed = 0;
      try {
        relayed = await flush();
        if (failures > 0) log.info({ failures }, "outbox relay recovered");
        failures = 0;
      } catch (err) {
        failures++;
        // One warning per outage, then quiet retries: the events wait safely in the outbox.
        if (failures === 1) log.warn({ err }, "outbox relay cannot deliver; retrying");
      }
      if (stopping) break;
      if (relayed >= batchSize) continue;
      const backoffMs = failures === 0 ? pollMs : Math.min(5_000, pollMs * 2 ** failures);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, backoffMs);
        function done() {
          clearTimeout(timer);
          wakeUp = undefined;
          resolve();
        }
        wakeUp = done;
      });
    }
  }

  return {
    start() {
      running ??= loop();
    },
    flush,
    wake() {
      wakeUp?.();
    },
    async stop() {
      stopping = true;
      wakeUp?.();
      await running;
    },
  };
}
