import type { DescMessage, MessageShape } from "@bufbuild/protobuf";
import type { EntityManager } from "@mikro-orm/core";
import type { Registry } from "prom-client";
import { z } from "zod";
import type { Database } from "../db/database.ts";
import type { Log } from "../log.ts";
import { type Consumer, type ConsumerOptions, createConsumer } from "./consumer.ts";
import { createJobMetrics, type JobMetrics } from "./job-metrics.ts";
import { createMemoryTransport } from "./memory-transport.ts";
import { publishEvent } from "./outbox.ts";
import { createRedisTransport } from "./redis-transport.ts";
import { createOutboxRelay, type OutboxRelay } from "./relay.ts";
import type { StreamTransport } from "./stream-transport.ts";

/** Job settings every service with async work reads from the environment. */
export const jobsConfigShape = {
  /** Redis for the streams; when unset, events flow through an in-process stream. */
  REDIS_URL: z.url({ protocol: /^rediss?$/ }).optional(),
};

/** Opens the stream transport: Redis Streams when a URL is given, in-process otherwise. */
export function openTransport(url: string | undefined, log: Log): StreamTransport {
  return url ? createRedisTransport({ url, log }) : createMemoryTransport();
}

/** What a consumer needs beyond what the service's jobs already know. */
export type ConsumeOptions<D extends DescMessage, P = undefined> = Omit<
  ConsumerOptions<D, P>,
  "transport" | "db" | "log" | "metrics"
>;

/** A service's async work: publishing through the outbox, the relay, and its consumers. */
export interface Jobs {
  readonly transport: StreamTransport;
  readonly relay: OutboxRelay;
  readonly metrics: JobMetrics;
  /** Stores an event in the outbox within the transaction of `em`; returns its id. */
  publish<D extends DescMessage>(
    em: EntityManager,
    stream: string,
    schema: D,
    message: MessageShape<D>,
    traceparent?: string,
  ): string;
  /** Adds a consumer; it starts with start(). */
  consume<D extends DescMessage, P = undefined>(options: ConsumeOptions<D, P>): void;
  start(): Promise<void>;
  /** Stops the consumers (in-flight handlers finish), then the relay, then the transport. */
  stop(): Promise<void>;
}

/** Wires a service's jobs: outbox publishing, a relay woken on every commit, consumers. */
export function createJobs(options: {
  readonly source: string;
  readonly db: Database;
  readonly transport: StreamTransport;
  readonly log: Log;
  readonly registry: Registry;
}): Jobs {
  const { db, transport, log } = options;
  const metrics = createJobMetrics(options.registry, transport);
  const relay = createOutboxRelay({ db, transport, log, metrics });
  const consumers: Consumer[] = [];
  // Relay right after a commit that published, instead of at the next poll; other commits (a
  // consumer's own transactions, most of all) must not cost a relay round each.
  const published = new WeakSet<EntityManager>();
  db.orm.em.getEventManager().registerSubscriber({
    afterTransactionCommit: ({ em }) => {
      if (published.has(em)) relay.wake();
    },
  });
  return {
    transport,
    relay,
    metrics,
    publish(em, stream, schema, message, traceparent) {
      published.add(em);
      return publishEvent(em, { stream, schema, message, source: options.source, traceparent });
    },
    consume(consumerOptions) {
      consumers.push(createConsumer({ ...consumerOptions, transport, db, log, metrics }));
    },
    async start() {
      relay.start();
      await Promise.all(consumers.map((c) => c.start()));
    },
    async stop() {
      await Promise.all(consumers.map((c) => c.stop()));
      await relay.stop();
      await transport.close();
    },
  };
}
