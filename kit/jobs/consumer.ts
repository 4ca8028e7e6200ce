import { hostname } from "node:os";
import {
  create,
  type DescMessage,
  fromBinary,
  type MessageShape,
  toBinary,
} from "@bufbuild/protobuf";
import { timestampNow } from "@bufbuild/protobuf/wkt";
import type { SqlEntityManager } from "@mikro-orm/postgresql";
import {
  DeadLetterSchema,
  type Envelope,
  EnvelopeSchema,
} from "../../gen/protomesh/events/v1/envelope_pb.ts";
import type { Database } from "../db/database.ts";
import type { Log } from "../log.ts";
import type { JobMetrics } from "./job-metrics.ts";
import type { StreamEntry, StreamTransport } from "./stream-transport.ts";

/** What the work on an event gets besides the event: the envelope and the attempt. */
export interface DeliveryContext {
  readonly envelope: Envelope;
  /** 1 on the first delivery, then 2, 3, … */
  readonly attempt: number;
  readonly log: Log;
}

/** What a handler gets besides the event: its transaction, and what prepare returned. */
export interface EventContext<P = undefined> extends DeliveryContext {
  /** The transaction the event is recorded as processed in; make state changes through it. */
  readonly em: SqlEntityManager;
  readonly prepared: P;
}

/** Handles one event; throwing makes the event be retried, then dead-lettered. */
export type EventHandler<D extends DescMessage, P = undefined> = (
  event: MessageShape<D>,
  ctx: EventContext<P>,
) => Promise<void>;

/** A consumer group member: what it reads, how it handles it, and its retry policy. */
export interface ConsumerOptions<D extends DescMessage, P = undefined> {
  readonly transport: StreamTransport;
  readonly db: Database;
  readonly log: Log;
  readonly metrics?: JobMetrics | undefined;
  readonly stream: string;
  readonly group: string;
  /** This member's name in the group; unique per process by default. */
  readonly consumer?: string;
  /** The event type the stream carries. */
  readonly schema: D;
  /**
   * Slow work that needs no transaction (rendering, a network call), done before the event's
   * transaction opens so that it holds no connection meanwhile; what it returns reaches the
   * handler as `prepared`. It runs again on every delivery: make it idempotent.
   */
  readonly prepare?: (event: MessageShape<D>, ctx: DeliveryContext) => Promise<P>;
  readonly handle: EventHandler<D, P>;
  /** Deliveries before an event goes to the dead-letter stream (default 5). */
  readonly maxDeliveries?: number;
  /** How long an entry may stay unacknowledged before another member takes it (default 30 s). */
  readonly visibilityTimeoutMs?: number;
  /** First retry delay; doubles per attempt (default 200 ms), capped below the visibility timeout. */
  readonly retryBaseMs?: number;
  /** Entries read per request (default 16). */
  readonly batchSize?: number;
  /** How long one read waits for new entries (default 1 s): also the longest stop() waits for it. */
  readonly blockMs?: number;
}

/** A running member of a consumer group. */
export interface Consumer {
  /** Creates the group if needed and starts consuming in the background. */
  start(): Promise<void>;
  /** Stops reading, finishes the handler in flight, leaves the rest pending for others. */
  stop(): Promise<void>;
}

/**
 * Creates an at-least-once consumer whose effects happen once: each event is handled in a
 * database transaction that also records its id for the group, so a redelivery (a retry, or
 * an entry taken over from a crashed member) finds the record and is acknowledged unhandled.
 */
export function createConsumer<D extends DescMessage, P = undefined>(
  options: ConsumerOptions<D, P>,
): Consumer {
  const { transport, db, stream, group, metrics } = options;
  const consumer =
    options.consumer ?? `${hostname()}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
  const log = options.log.child({ stream, group, consumer });
  const maxDeliveries = options.maxDeliveries ?? 5;
  const visibilityMs = options.visibilityTimeoutMs ?? 30_000;
  const retryBaseMs = options.retryBaseMs ?? 200;
  const batchSize = options.batchSize ?? 16;
  const blockMs = options.blockMs ?? 1_000;
  const labels = { stream, group };
  const inFlight = new Set<Promise<void>>();
  const retryTimers = new Set<NodeJS.Timeout>();
  let stopping = false;
  let running: Promise<void> | undefined;

  const retryDelay = (deliveries: number) =>
    Math.min(retryBaseMs * 2 ** (deliveries - 1), visibilityMs / 2);

  async function deadLetter(entry: StreamEntry, envelope: Envelope | undefined, error: string) {
    const letter = create(DeadLetterSchema, {
      group,
      deliveries: entry.deliveries,
      error,
      time: timestampNow(),
      ...(envelope ? { envelope } : {}),
    });
    await transport.deadLetter(stream, group, entry.id, toBinary(DeadLetterSchema, letter));
    metrics?.deadLettered.inc(labels);
    log.error(
      { eventId: envelope?.id, entryId: entry.id, deliveries: entry.deliveries, error },
      "event dead-lettered",
    );
  }

  async function handle(entry: StreamEntry): Promise<void> {
    let envelope: Envelope;
    let event: MessageShape<D>;
    try {
      envelope = fromBinary(EnvelopeSchema, entry.data);
      if (envelope.type !== options.schema.typeName) {
        throw new Error(`expected ${options.schema.typeName}, got ${envelope.type}`);
      }
      event = fromBinary(options.schema, envelope.payload);
    } catch (err) {
      // A malformed entry can never succeed: set it aside at once instead of retrying.
      return deadLetter(entry, undefined, `undecodable event: ${(err as Error).message}`);
    }
    if (entry.deliveries > maxDeliveries) {
      // Delivered this often without an error being recorded: the members that took it died
      // or hung in the handler.
      return deadLetter(
        entry,
        envelope,
        `no handler finished in ${entry.deliveries - 1} deliveries`,
      );
    }
    metrics?.deliveries.inc(labels);
    try {
      const delivery = { envelope, attempt: entry.deliveries, log };
      const prepared = (await options.prepare?.(event, delivery)) as P;
      await db.fork().transactional(async (em) => {
        const fresh = await em.execute<{ event_id: string }[]>(
          "insert into processed_event (consumer_group, event_id) values (?, ?) on conflict do nothing returning event_id",
          [group, envelope.id],
        );
        if (fresh.length === 0) return;
        await options.handle(event, { ...delivery, em, prepared });
      });
    } catch (err) {
      metrics?.failures.inc(labels);
      log.warn({ err, eventId: envelope.id, attempt: entry.deliveries }, "event handler failed");
      if (entry.deliveries >= maxDeliveries) {
        return deadLetter(entry, envelope, (err as Error).message || String(err));
      }
      scheduleRetry(entry);
      return;
    }
    await transport.ack(stream, group, entry.id);
  }

  function scheduleRetry(entry: StreamEntry) {
    // A stopping member leaves the entry pending; another one takes it over after the timeout.
    if (stopping) return;
    const delay = retryDelay(entry.deliveries);
    const timer = setTimeout(() => {
      retryTimers.delete(timer);
      if (stopping) return;
      // Only if still idle since our delivery: another member may have taken it over.
      void track(
        transport
          .redeliver(stream, group, consumer, entry.id, delay / 2)
          .then((again) => (again ? handle(again) : undefined)),
      );
    }, delay);
    retryTimers.add(timer);
  }

  function track(work: Promise<void>) {
    const tracked = work.catch((err: unknown) => {
      log.warn({ err }, "event processing interrupted; the entry stays pending");
    });
    inFlight.add(tracked);
    void tracked.finally(() => inFlight.delete(tracked));
    return tracked;
  }

  async function loop(): Promise<void> {
    let lastClaim = 0;
    let failures = 0;
    while (!stopping) {
      try {
        const entries: StreamEntry[] = [];
        // Take over entries of members that crashed or hung, at most a few times per timeout.
        if (performance.now() - lastClaim >= visibilityMs / 4) {
          lastClaim = performance.now();
          entries.push(
            ...(await transport.claimIdle(stream, group, consumer, visibilityMs, batchSize)),
          );
        }
        if (entries.length === 0) {
          entries.push(...(await transport.readNew(stream, group, consumer, batchSize, blockMs)));
        }
        for (const entry of entries) {
          // Unhandled entries stay pending to this member and are taken over after the timeout.
          if (stopping) break;
          await track(handle(entry));
        }
        failures = 0;
      } catch (err) {
        failures++;
        if (failures === 1) log.warn({ err }, "cannot read the stream; retrying");
        await new Promise((resolve) => setTimeout(resolve, Math.min(5_000, 100 * 2 ** failures)));
      }
    }
  }

  return {
    async start() {
      await transport.ensureGroup(stream, group);
      metrics?.watch(stream, group);
      running ??= loop();
    },
    async stop() {
      stopping = true;
      for (const timer of retryTimers) clearTimeout(timer);
      retryTimers.clear();
      await running;
      await Promise.all(inFlight);
    },
  };
}
