// Crash tests of the async jobs across processes: consumer-group members (the job-consumer
// test double) killed with SIGKILL while they handle events, on real PostgreSQL and Redis.
// The effects must still happen exactly once and nothing may stay pending.
import { type ChildProcess, spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { existsSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import { create } from "@bufbuild/protobuf";
import { Registry } from "prom-client";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { UserRegisteredSchema } from "../gen/protomesh/user/v1/events_pb.ts";
import { type Database, openDatabase } from "../kit/db/database.ts";
import { createJobs, type Jobs } from "../kit/jobs/jobs.ts";
import { OutboxEvent } from "../kit/jobs/outbox.ts";
import { createRedisTransport } from "../kit/jobs/redis-transport.ts";
import { createLogger } from "../kit/log.ts";
import { createEmptyDatabase, dropDatabase, testDatabaseUrl } from "./support/database.ts";
import { effectMigrations } from "./support/job-schema.ts";
import { distEntry, type LogLine, readLogLines } from "./support/process.ts";
import { deleteRedisKeys, testRedisUrl } from "./support/redis.ts";
import { nodeBinary, repoRoot } from "./support/repo.ts";

const databaseUrl = testDatabaseUrl;
const redisUrl = testRedisUrl;
const fixture = distEntry("test/fixtures/job-consumer.js");
const group = "effects";

const log = createLogger({
  name: "jobs-crash-test",
  level: process.env.TEST_LOG_LEVEL ?? "silent",
  format: "json",
});

/** A job-consumer process: its log lines so far and how it ended. */
interface Worker {
  readonly name: string;
  readonly child: ChildProcess;
  readonly logs: LogLine[];
  /** Resolves once the process has exited: its code, or the signal that ended it. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  running(): boolean;
  /** Resolves with the first log line, past or future, that `accept` accepts. */
  waitFor(accept: (line: LogLine) => boolean, timeoutMs: number, what: string): Promise<LogLine>;
  stderr(): string;
}

const workers: Worker[] = [];

/** Starts a job-consumer process and resolves once it logs "consuming". */
async function startConsumer(name: string, env: Record<string, string>): Promise<Worker> {
  if (!existsSync(fixture)) {
    throw new Error(`${fixture} does not exist: run \`npm run build\` before these tests`);
  }
  const child = spawn(nodeBinary(), [fixture], {
    cwd: repoRoot,
    env: { ...process.env, LOG_FORMAT: "json", LOG_LEVEL: "info", CONSUMER: name, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once("exit", (code, signal) => resolve({ code, signal }));
    // A spawn failure emits "error" and no "exit".
    child.once("error", () => resolve({ code: null, signal: null }));
  });
  const logs: LogLine[] = [];
  const listeners = new Set<(line: LogLine) => void>();
  let stderr = "";
  readLogLines(child, (line) => {
    logs.push(line);
    for (const listener of listeners) listener(line);
  });
  child.stderr?.setEncoding("utf8");
  child.stderr?.on("data", (chunk: string) => {
    stderr += chunk;
  });
  const worker: Worker = {
    name,
    child,
    logs,
    exited,
    running: () => child.exitCode === null && child.signalCode === null,
    stderr: () => stderr,
    waitFor(accept, timeoutMs, what) {
      const seen = logs.find(accept);
      if (seen) return Promise.resolve(seen);
      return new Promise<LogLine>((resolve, reject) => {
        const done = () => {
          clearTimeout(timer);
          listeners.delete(listener);
        };
        const listener = (line: LogLine) => {
          if (!accept(line)) return;
          done();
          resolve(line);
        };
        const timer = setTimeout(() => {
          done();
          reject(new Error(`${name}: no ${what} within ${timeoutMs} ms\nstderr:\n${stderr}`));
        }, timeoutMs);
        listeners.add(listener);
        void exited.then(({ code, signal }) => {
          if (!listeners.has(listener)) return;
          done();
          reject(
            new Error(`${name} exited (${code ?? signal}) before ${what}\nstderr:\n${stderr}`),
          );
        });
      });
    },
  };
  workers.push(worker);
  // Generous: several Node processes starting at once on a 2-core machine.
  await worker.waitFor((line) => line.msg === "consuming", 60_000, 'a "consuming" line');
  return worker;
}

/** SIGKILLs every consumer still running and waits until they are gone. */
async function killAll(): Promise<void> {
  await Promise.all(
    workers.splice(0).map(async (worker) => {
      if (worker.running()) worker.child.kill("SIGKILL");
      await worker.exited;
    }),
  );
}

/** Polls `probe` until `accept` holds, failing with the last value after `timeoutMs`. */
async function until<T>(
  probe: () => Promise<T>,
  accept: (value: T) => boolean,
  timeoutMs: number,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (accept(value)) return value;
    if (Date.now() > deadline) {
      throw new Error(`condition not met in ${timeoutMs} ms: ${JSON.stringify(value)}`);
    }
    await sleep(50);
  }
}

const isHandling = (line: LogLine) => line.msg === "handling";

// Process exit is our last resort when the runner is torn down without its hooks.
process.once("exit", () => {
  for (const worker of workers) if (worker.running()) worker.child.kill("SIGKILL");
});

describe.skipIf(!databaseUrl || !redisUrl)(
  "async jobs across processes: consumers killed with SIGKILL (PostgreSQL + Redis Streams)",
  () => {
    // Unique per run so that runs sharing a Redis never meet; every key is deleted at the end.
    const keyPrefix = `test:crash:${randomUUID()}:`;
    let url = "";
    let db: Database | undefined;
    let jobs: Jobs | undefined;

    /** The environment of a consumer of `stream`. */
    const consumerEnv = (stream: string, extra: Record<string, string> = {}) => ({
      DATABASE_URL: url,
      REDIS_URL: redisUrl ?? "",
      STREAM: stream,
      GROUP: group,
      KEY_PREFIX: keyPrefix,
      VISIBILITY_TIMEOUT_MS: "1000",
      ...extra,
    });

    const producer = (): Jobs => {
      if (!jobs) throw new Error("beforeAll did not run");
      return jobs;
    };
    const database = (): Database => {
      if (!db) throw new Error("beforeAll did not run");
      return db;
    };
    const query = <T>(sql: string, params: unknown[] = []) =>
      database().fork().execute<T[]>(sql, params);
    const countOf = async (sql: string, params: unknown[] = []) =>
      Number((await query<{ n: string }>(sql, params))[0]?.n);

    /** Publishes events through the outbox, `perTransaction` to a transaction; their ids. */
    async function publish(stream: string, count: number, perTransaction = 500) {
      const ids: string[] = [];
      for (let done = 0; done < count; done += perTransaction) {
        await database()
          .fork()
          .transactional(async (em) => {
            for (let n = done; n < Math.min(count, done + perTransaction); n++) {
              const event = create(UserRegisteredSchema, {
                userId: randomUUID(),
                email: `user${n}@example.com`,
              });
              ids.push(producer().publish(em, stream, UserRegisteredSchema, event));
            }
          });
      }
      return ids;
    }

    beforeAll(async () => {
      url = (await createEmptyDatabase()) ?? "";
      // Migrated here, once: consumer processes starting together then find nothing to do.
      db = await openDatabase({
        service: "jobs-crash-test",
        url,
        entities: [OutboxEvent],
        migrations: effectMigrations,
        log,
      });
      const transport = createRedisTransport({ url: redisUrl ?? "", log, keyPrefix });
      jobs = createJobs({ source: "user", db, transport, log, registry: new Registry() });
      // The producer's relay, woken by each commit; it has no consumers of its own.
      await jobs.start();
    });

    afterEach(async () => {
      await killAll();
    });

    afterAll(async () => {
      await killAll();
      await jobs?.stop();
      await db?.close();
      if (url) await dropDatabase(url);
      if (redisUrl) await deleteRedisKeys(redisUrl, keyPrefix);
    });

    it("a consumer killed with SIGKILL in the middle of a handler: another takes the entry over and the effect happens exactly once", async () => {
      const stream = "crash-one";
      // Only the slow member runs when the event arrives, so it is the one that gets it.
      const slow = await startConsumer("slow", consumerEnv(stream, { HANDLER_DELAY_MS: "30000" }));
      const [eventId] = await publish(stream, 1);
      const first = await slow.waitFor(isHandling, 15_000, 'a "handling" line');
      expect(first).toMatchObject({ eventId, attempt: 1, consumer: "slow" });
      // Wait until the slow member has inserted its effect (its open transaction holds a lock
      // on the table), so that the kill lands between the effect and the commit.
      await until(
        () =>
          countOf(
            `select count(*) as n from pg_locks l join pg_class c on c.oid = l.relation
             where l.database = (select oid from pg_database where datname = current_database())
             and c.relname = 'effect' and l.mode = 'RowExclusiveLock'`,
          ),
        (n) => n > 0,
        10_000,
      );

      const fast = await startConsumer("fast", consumerEnv(stream));
      const killedAt = performance.now();
      slow.child.kill("SIGKILL");
      expect(await slow.exited).toEqual({ code: null, signal: "SIGKILL" });

      const second = await fast.waitFor(
        (line) => isHandling(line) && line.eventId === eventId,
        15_000,
        "the event taken over",
      );
      const tookOverMs = performance.now() - killedAt;
      expect(second).toMatchObject({ eventId, attempt: 2, consumer: "fast" });
      // The entry was idle since the slow member read it: at most one visibility timeout
      // plus a claim period after the kill, with margin for a loaded machine.
      expect(tookOverMs).toBeLessThan(5_000);
      console.info(JSON.stringify({ tookOverMs: Math.round(tookOverMs) }));

      const stats = await until(
        () => producer().transport.stats(stream, group),
        (s) => s.pending === 0,
        10_000,
      );
      expect(stats.deadLettered).toBe(0);
      expect(await query("select event_id, consumer from effect")).toEqual([
        { event_id: eventId, consumer: "fast" },
      ]);
      expect(
        await countOf(
          "select count(*) as n from processed_event where consumer_group = ? and event_id = ?",
          [group, eventId],
        ),
      ).toBe(1);
      expect(fast.logs.filter(isHandling)).toHaveLength(1);

      fast.child.kill("SIGTERM");
      expect(await fast.exited).toEqual({ code: 0, signal: null });
    }, 120_000);

    it("10,000 events, three consumers in separate processes, one killed every few seconds: 10,000 distinct effects, none repeated, pending list empty at the end", async () => {
      const stream = "crash-many";
      const total = 10_000;
      const maxKills = 10;
      const killEveryMs = 2_000;
      // Earlier tests' effects would count here.
      await query("delete from effect");
      await query("delete from processed_event");

      let started = 0;
      const spawnMember = () =>
        startConsumer(`member-${++started}`, consumerEnv(stream, { HANDLER_DELAY_MS: "1" }));
      const members = await Promise.all([spawnMember(), spawnMember(), spawnMember()]);

      const begin = performance.now();
      await publish(stream, total, 500);
      const publishedMs = performance.now() - begin;

      const distinct = () => countOf("select count(distinct event_id) as n from effect");
      // Bounded by progress rather than by a fixed time alone: the machine running the tests
      // may be busy with other work, yet a stall of 30 s means events are stuck.
      const deadline = Date.now() + 240_000;
      let lastProgress = Date.now();
      let kills = 0;
      let lastKill = performance.now();
      let done = await distinct();
      while (done < total) {
        if (Date.now() > deadline || Date.now() - lastProgress > 30_000) {
          throw new Error(
            `stuck at ${done} of ${total} events handled (${kills} kills, ${Math.round(
              (performance.now() - begin) / 1000,
            )} s)`,
          );
        }
        if (kills < maxKills && performance.now() - lastKill >= killEveryMs) {
          // Round robin, oldest first: each kill lands on a member that has been busy.
          const victim = members.shift();
          if (!victim) throw new Error("no member left");
          victim.child.kill("SIGKILL");
          await victim.exited;
          kills++;
          members.push(await spawnMember());
          lastKill = performance.now();
        }
        await sleep(100);
        const now = await distinct();
        if (now > done) lastProgress = Date.now();
        done = now;
      }
      const handledMs = performance.now() - begin;

      // Entries handled but not acknowledged when their member died are taken over after
      // the visibility timeout, found processed, and acknowledged.
      const stats = await until(
        () => producer().transport.stats(stream, group),
        (s) => s.pending === 0,
        30_000,
      );
      const drainedMs = performance.now() - begin;
      expect(stats.deadLettered).toBe(0);
      expect(await countOf("select count(*) as n from effect")).toBe(total);
      expect(await countOf("select count(distinct event_id) as n from effect")).toBe(total);
      expect(
        await countOf("select count(*) as n from processed_event where consumer_group = ?", [
          group,
        ]),
      ).toBe(total);
      expect(await countOf("select count(*) as n from outbox_event")).toBe(0);

      // Figures for the report: handler runs by attempt, across live and killed members.
      const runs = [...workers].flatMap((worker) => worker.logs.filter(isHandling));
      const tally = (lines: LogLine[], key: (line: LogLine) => string) => {
        const counts: Record<string, number> = {};
        for (const line of lines) counts[key(line)] = (counts[key(line)] ?? 0) + 1;
        return counts;
      };
      const byAttempt = tally(runs, (line) => String(line.attempt));
      // Warnings and errors of the members (failed handlers, lost reads) worth a look.
      const warnings = tally(
        [...workers].flatMap((worker) =>
          worker.logs.filter((line) => typeof line.level === "number" && line.level >= 40),
        ),
        (line) => String(line.msg),
      );
      console.info(
        JSON.stringify({
          events: total,
          kills,
          membersStarted: started,
          publishedMs: Math.round(publishedMs),
          handledMs: Math.round(handledMs),
          drainedMs: Math.round(drainedMs),
          handlerRuns: runs.length,
          handlerRunsByAttempt: byAttempt,
          // Runs whose transaction died with their member: begun, never committed.
          handlerRunsRolledBack: runs.length - total,
          warnings,
          streamLength: stats.length,
        }),
      );
      expect(kills).toBeGreaterThan(0);

      const exits = await Promise.all(
        members.map((member) => {
          member.child.kill("SIGTERM");
          return member.exited;
        }),
      );
      expect(exits).toEqual(members.map(() => ({ code: 0, signal: null })));
    }, 420_000);
  },
);
