import { randomUUID } from "node:crypto";
import { create, fromBinary } from "@bufbuild/protobuf";
import { Registry } from "prom-client";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { DeadLetterSchema } from "../../gen/protomesh/events/v1/envelope_pb.ts";
import { UserRegisteredSchema } from "../../gen/protomesh/user/v1/events_pb.ts";
import { openTestDatabase, type TestDatabase } from "../../test/support/database.ts";
import { deleteRedisKeys, testRedisUrl } from "../../test/support/redis.ts";
import { Migration } from "../db/database.ts";
import { createLogger } from "../log.ts";
import { createConsumer, type EventHandler } from "./consumer.ts";
import { createJobs, type Jobs } from "./jobs.ts";
import { createMemoryTransport } from "./memory-transport.ts";
import { jobMigrations } from "./migrations.ts";
import { createRedisTransport } from "./redis-transport.ts";
import type { StreamTransport } from "./stream-transport.ts";

const log = createLogger({
  name: "jobs-test",
  level: process.env.TEST_LOG_LEVEL ?? "silent",
  format: "json",
});
const redisUrl = testRedisUrl;

interface Adapter {
  readonly name: string;
  readonly open: () => StreamTransport;
  /** A transport that cannot reach its backend, where the adapter has one. */
  readonly unreachable?: () => StreamTransport;
}

// Every stream name is unique per run so runs against a shared Redis never meet.
const prefix = `test:${randomUUID()}:`;
const adapters: Adapter[] = [
  { name: "in-process", open: () => createMemoryTransport() },
  ...(redisUrl
    ? [
        {
          name: "Redis Streams",
          open: () => createRedisTransport({ url: redisUrl, log, keyPrefix: prefix }),
          unreachable: () =>
            createRedisTransport({
              url: "redis://127.0.0.1:1",
              log,
              keyPrefix: prefix,
              commandTimeoutMs: 500,
            }),
        },
      ]
    : []),
];

class CreateEffectTable extends Migration {
  override async up(): Promise<void> {
    // No unique key on purpose: a repeated effect must show up as a second row.
    this.addSql("create table effect (event_id uuid not null, email text not null)");
    this.addSql("create table account (email text primary key)");
  }
}

async function until<T>(
  probe: () => Promise<T>,
  accept: (value: T) => boolean,
  timeoutMs = 10_000,
) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (accept(value)) return value;
    if (Date.now() > deadline)
      throw new Error(`condition not met in ${timeoutMs} ms: ${JSON.stringify(value)}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

describe.each(adapters)("async jobs over the $name transport", (adapter) => {
  let db: TestDatabase;
  const running: Jobs[] = [];
  let streamNo = 0;
  let stream = "";

  beforeAll(async () => {
    db = await openTestDatabase({
      log,
      entities: [(await import("./outbox.ts")).OutboxEvent],
      migrations: [...jobMigrations, { name: "test-0001-effect", class: CreateEffectTable }],
    });
  });
  afterAll(async () => {
    await db.close();
    if (redisUrl) await deleteRedisKeys(redisUrl, prefix);
  });
  afterEach(async () => {
    await Promise.all(running.splice(0).map((jobs) => jobs.stop()));
    await db.fork().execute("delete from effect; delete from account; delete from outbox_event");
    stream = `${adapter.name.replace(/\W/g, "")}-${++streamNo}`;
  });
  stream = `${adapter.name.replace(/\W/g, "")}-0`;

  function jobs(transport = adapter.open(), registry = new Registry()): Jobs {
    const created = createJobs({ source: "user", db, transport, log, registry });
    running.push(created);
    return created;
  }

  /** A handler whose effect is a row in the same transaction as the processed-event record. */
  const recordEffect: EventHandler<typeof UserRegisteredSchema> = async (
    event,
    { em, envelope },
  ) => {
    await em.execute("insert into effect (event_id, email) values (?, ?)", [
      envelope.id,
      event.email,
    ]);
  };

  const effects = () =>
    db.fork().execute<{ event_id: string; email: string }[]>("select event_id, email from effect");

  /** Registers an account and publishes its event in one transaction, as a service would. */
  async function register(service: Jobs, email: string, rollback = false) {
    let eventId = "";
    await db
      .fork()
      .transactional(async (em) => {
        await em.execute("insert into account (email) values (?)", [email]);
        const event = create(UserRegisteredSchema, { userId: randomUUID(), email });
        eventId = service.publish(
          em,
          stream,
          UserRegisteredSchema,
          event,
          "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        );
        if (rollback) throw new Error("rolled back on purpose");
      })
      .catch((err: Error) => {
        if (!rollback) throw err;
      });
    return eventId;
  }

  it("delivers an event committed with its state change once, with its envelope", async () => {
    const service = jobs();
    const seen: { type: string; source: string; traceparent: string; attempt: number }[] = [];
    service.consume({
      stream,
      group: "mailer",
      schema: UserRegisteredSchema,
      async handle(event, ctx) {
        const { envelope, attempt } = ctx;
        seen.push({
          type: envelope.type,
          source: envelope.source,
          traceparent: envelope.traceparent,
          attempt,
        });
        await recordEffect(event, ctx);
      },
    });
    await service.start();
    const eventId = await register(service, "ada@example.com");
    const rows = await until(effects, (r) => r.length > 0);
    expect(rows).toEqual([{ event_id: eventId, email: "ada@example.com" }]);
    expect(seen).toEqual([
      {
        type: "protomesh.user.v1.UserRegistered",
        source: "user",
        traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        attempt: 1,
      },
    ]);
    const stats = await until(
      () => service.transport.stats(stream, "mailer"),
      (s) => s.pending === 0,
    );
    expect(stats.deadLettered).toBe(0);
    expect(await db.fork().execute("select * from outbox_event")).toEqual([]);
  });

  it("never delivers an event whose transaction rolled back", async () => {
    const service = jobs();
    const handled: string[] = [];
    service.consume({
      stream,
      group: "mailer",
      schema: UserRegisteredSchema,
      handle: async (event) => {
        handled.push(event.email);
      },
    });
    await service.start();
    await register(service, "ghost@example.com", true);
    await register(service, "real@example.com");
    await until(
      async () => handled,
      (h) => h.length > 0,
    );
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(handled).toEqual(["real@example.com"]);
  });

  it("keeps events committed while nothing relays them, and delivers them in order later", async () => {
    const producer = jobs();
    for (const n of [1, 2, 3]) await register(producer, `user${n}@example.com`);
    // Nothing was relayed: the producer's relay never started, its requests did not fail.
    expect((await db.fork().execute("select stream from outbox_event")).length).toBe(3);
    const consumer = jobs();
    const order: string[] = [];
    consumer.consume({
      stream,
      group: "mailer",
      schema: UserRegisteredSchema,
      handle: async (event) => {
        order.push(event.email);
      },
    });
    await consumer.start();
    await until(
      async () => order,
      (o) => o.length === 3,
    );
    expect(order).toEqual(["user1@example.com", "user2@example.com", "user3@example.com"]);
  });

  it.skipIf(!adapter.unreachable)(
    "loses nothing when the stream is unreachable at commit time: the relay delivers once it is back",
    async () => {
      const producer = jobs(adapter.unreachable?.());
      const eventId = await register(producer, "offline@example.com");
      // The relay's own attempt, run here rather than in its background loop so that the
      // failure is observed: the producer's transaction committed all the same.
      await expect(producer.relay.flush()).rejects.toThrow();
      expect(await db.fork().execute("select id from outbox_event")).toEqual([{ id: eventId }]);
      await producer.stop();
      const online = jobs();
      online.consume({
        stream,
        group: "mailer",
        schema: UserRegisteredSchema,
        handle: recordEffect,
      });
      await online.start();
      expect(await until(effects, (r) => r.length > 0)).toEqual([
        { event_id: eventId, email: "offline@example.com" },
      ]);
    },
  );

  it("dead-letters an event after the last delivery, with the handler's error", async () => {
    const registry = new Registry();
    const service = jobs(adapter.open(), registry);
    const attempts: number[] = [];
    service.consume({
      stream,
      group: "mailer",
      schema: UserRegisteredSchema,
      maxDeliveries: 3,
      retryBaseMs: 20,
      async handle(_event, { attempt }) {
        attempts.push(attempt);
        throw new Error("550 mailbox unavailable");
      },
    });
    await service.start();
    const eventId = await register(service, "bounce@example.com");
    const stats = await until(
      () => service.transport.stats(stream, "mailer"),
      (s) => s.deadLettered === 1,
    );
    expect(stats.pending).toBe(0);
    expect(attempts).toEqual([1, 2, 3]);
    const [letter] = (await service.transport.deadLetters(stream, 10)).map((data) =>
      fromBinary(DeadLetterSchema, data),
    );
    expect(letter?.envelope?.id).toBe(eventId);
    expect(letter?.group).toBe("mailer");
    expect(letter?.deliveries).toBe(3);
    expect(letter?.error).toBe("550 mailbox unavailable");
    const metrics = await registry.metrics();
    expect(metrics).toContain(`jobs_dead_lettered_total{stream="${stream}",group="mailer"} 1`);
    expect(metrics).toContain(`jobs_failures_total{stream="${stream}",group="mailer"} 3`);
    expect(metrics).toContain(`jobs_dead_letter_length{stream="${stream}",group="mailer"} 1`);
  });

  it("has one effect for an event relayed twice", async () => {
    const service = jobs();
    const eventId = await register(service, "twice@example.com");
    const [row] = await db
      .fork()
      .execute<{ stream: string; envelope: Uint8Array }[]>(
        "select stream, envelope from outbox_event",
      );
    // What a relay that crashed between appending and committing does: append again.
    await service.transport.append(stream, [
      row?.envelope as Uint8Array,
      row?.envelope as Uint8Array,
    ]);
    await db.fork().execute("delete from outbox_event");
    service.consume({
      stream,
      group: "mailer",
      schema: UserRegisteredSchema,
      handle: recordEffect,
    });
    await service.start();
    const delivered = async () => {
      const stats = await service.transport.stats(stream, "mailer");
      const deliveries = (await service.metrics.deliveries.get()).values[0]?.value ?? 0;
      return { deliveries, pending: stats.pending };
    };
    await until(delivered, (d) => d.deliveries === 2 && d.pending === 0);
    expect(await effects()).toEqual([{ event_id: eventId, email: "twice@example.com" }]);
  });

  it("leaves the event of a stopping member pending; another takes it over, with one effect", async () => {
    const registry = new Registry();
    const service = jobs(adapter.open(), registry);
    service.metrics.watch(stream, "mailer");
    const member = (handle: EventHandler<typeof UserRegisteredSchema>) =>
      createConsumer({
        transport: service.transport,
        db,
        log,
        stream,
        group: "mailer",
        schema: UserRegisteredSchema,
        visibilityTimeoutMs: 400,
        handle,
      });
    let started = () => {};
    const handlerStarted = new Promise<void>((resolve) => {
      started = resolve;
    });
    let release = () => {};
    const first = member(async () => {
      started();
      await new Promise<void>((_, reject) => {
        release = () => reject(new Error("connection lost"));
      });
    });
    await first.start();
    service.relay.start();
    const eventId = await register(service, "handover@example.com");
    await handlerStarted;
    // stop() waits for the handler in flight; it fails, and the entry must stay pending.
    const stopped = first.stop();
    release();
    await stopped;
    expect((await service.transport.stats(stream, "mailer")).pending).toBe(1);
    // What an operator sees on /metrics while the entry waits for another member.
    await new Promise((resolve) => setTimeout(resolve, 50));
    const metrics = await registry.metrics();
    expect(metrics).toContain(`jobs_pending{stream="${stream}",group="mailer"} 1`);
    const oldest = new RegExp(
      `jobs_oldest_pending_seconds\\{stream="${stream}",group="mailer"\\} ([\\d.e-]+)`,
    );
    expect(Number(oldest.exec(metrics)?.[1])).toBeGreaterThan(0.04);

    const attempts: number[] = [];
    const second = member(async (event, ctx) => {
      attempts.push(ctx.attempt);
      await recordEffect(event, ctx);
    });
    await second.start();
    try {
      expect(await until(effects, (r) => r.length > 0)).toEqual([
        { event_id: eventId, email: "handover@example.com" },
      ]);
      expect(attempts).toEqual([2]);
    } finally {
      await second.stop();
    }
  });
});
