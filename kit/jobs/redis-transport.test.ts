import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { Redis } from "ioredis";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { deleteRedisKeys, testRedisUrl } from "../../test/support/redis.ts";
import { createRedisTransport, type RedisTransportOptions } from "./redis-transport.ts";
import type { StreamTransport } from "./stream-transport.ts";

const url = testRedisUrl;

describe.skipIf(!url)("Redis Streams transport", () => {
  const prefix = `test:${randomUUID()}:`;
  const log = pino({ level: "silent" });
  const opened: StreamTransport[] = [];
  let admin: Redis;

  const open = (overrides: Partial<RedisTransportOptions> = {}): StreamTransport => {
    const transport = createRedisTransport({
      url: url ?? "",
      keyPrefix: prefix,
      log,
      ...overrides,
    });
    opened.push(transport);
    return transport;
  };
  const bytes = (...values: number[]) => new Uint8Array(values);
  let streamCount = 0;
  const freshStream = () => `s${++streamCount}`;

  beforeAll(() => {
    admin = new Redis(url ?? "");
  });

  afterAll(async () => {
    await Promise.all(opened.map((transport) => transport.close()));
    await admin.quit();
    await deleteRedisKeys(url ?? "", prefix);
  });

  it("round-trips binary entries in order", async () => {
    const transport = open();
    const stream = freshStream();
    await transport.ensureGroup(stream, "g");
    await transport.ensureGroup(stream, "g");
    const sent = [bytes(0x00, 0xff, 0x00), bytes(), bytes(0xff, 0xfe, 0x0d, 0x0a, 0x00)];
    await transport.append(stream, sent);
    await transport.append(stream, [bytes(7)]);
    const entries = await transport.readNew(stream, "g", "c1", 10, 0);
    expect(entries.map((entry) => entry.data)).toEqual([...sent, bytes(7)]);
    expect(entries.map((entry) => entry.deliveries)).toEqual([1, 1, 1, 1]);
    const ids = entries.map((entry) => entry.id);
    expect([...ids].sort(compareIds)).toEqual(ids);
    expect(new Set(ids).size).toBe(4);
    expect(await transport.readNew(stream, "g", "c1", 10, 0)).toEqual([]);
  });

  it("removes acknowledged entries from the pending list", async () => {
    const transport = open();
    const stream = freshStream();
    await transport.ensureGroup(stream, "g");
    await transport.append(stream, [bytes(1), bytes(2)]);
    const [first] = await transport.readNew(stream, "g", "c1", 10, 0);
    expect((await transport.stats(stream, "g")).pending).toBe(2);
    await transport.ack(stream, "g", must(first).id);
    expect((await transport.stats(stream, "g")).pending).toBe(1);
  });

  it("hands an idle entry to another consumer only after the idle time", async () => {
    const transport = open();
    const stream = freshStream();
    await transport.ensureGroup(stream, "g");
    await transport.append(stream, [bytes(1)]);
    const [read] = await transport.readNew(stream, "g", "a", 10, 0);
    expect(await transport.claimIdle(stream, "g", "b", 300, 10)).toEqual([]);
    await sleep(350);
    const claimed = await transport.claimIdle(stream, "g", "b", 300, 10);
    expect(claimed).toEqual([{ id: must(read).id, data: bytes(1), deliveries: 2 }]);
    // Just claimed, so no longer idle for anyone.
    expect(await transport.claimIdle(stream, "g", "a", 300, 10)).toEqual([]);
  });

  it("follows the claim cursor past many busy pending entries", async () => {
    const transport = open();
    const stream = freshStream();
    await transport.ensureGroup(stream, "g");
    await transport.append(
      stream,
      Array.from({ length: 25 }, (_, i) => bytes(i)),
    );
    const read = await transport.readNew(stream, "g", "a", 25, 0);
    await sleep(250);
    // The first 24 become busy again; only the last stays idle, beyond 10 × COUNT.
    for (const entry of read.slice(0, 24)) {
      expect(await transport.redeliver(stream, "g", "a", entry.id, 0)).toBeDefined();
    }
    const claimed = await transport.claimIdle(stream, "g", "b", 200, 1);
    expect(claimed.map((entry) => entry.id)).toEqual([must(read[24]).id]);
  });

  it("drops pending entries deleted from the stream when claiming", async () => {
    const transport = open();
    const stream = freshStream();
    await transport.ensureGroup(stream, "g");
    await transport.append(stream, [bytes(1), bytes(2)]);
    const [gone, kept] = await transport.readNew(stream, "g", "a", 10, 0);
    await admin.xdel(prefix + stream, must(gone).id);
    await sleep(50);
    const claimed = await transport.claimIdle(stream, "g", "b", 20, 10);
    expect(claimed.map((entry) => entry.id)).toEqual([must(kept).id]);
    expect((await transport.stats(stream, "g")).pending).toBe(1);
  });

  it("redelivers with an incremented counter, unless taken over meanwhile", async () => {
    const transport = open();
    const stream = freshStream();
    await transport.ensureGroup(stream, "g");
    await transport.append(stream, [bytes(9)]);
    const [read] = await transport.readNew(stream, "g", "a", 10, 0);
    const id = must(read).id;
    await sleep(80);
    expect(await transport.redeliver(stream, "g", "a", id, 50)).toEqual({
      id,
      data: bytes(9),
      deliveries: 2,
    });
    // Redelivered just now: not idle long enough for another retry.
    expect(await transport.redeliver(stream, "g", "a", id, 50)).toBeUndefined();
    await sleep(80);
    const [taken] = await transport.claimIdle(stream, "g", "b", 50, 10);
    expect(taken?.deliveries).toBe(3);
    expect(await transport.redeliver(stream, "g", "a", id, 50)).toBeUndefined();
    await transport.ack(stream, "g", id);
    await sleep(80);
    expect(await transport.redeliver(stream, "g", "a", id, 50)).toBeUndefined();
  });

  it("dead-letters an entry and acknowledges it", async () => {
    const transport = open();
    const stream = freshStream();
    await transport.ensureGroup(stream, "g");
    await transport.append(stream, [bytes(1)]);
    const [read] = await transport.readNew(stream, "g", "a", 10, 0);
    const letter = bytes(0xff, 0x00, 0x42);
    await transport.deadLetter(stream, "g", must(read).id, letter);
    const dead = await admin.xrangeBuffer(`${prefix}${stream}:dead`, "-", "+");
    expect(dead.map(([, fields]) => fields.map((field) => new Uint8Array(field)))).toEqual([
      [new Uint8Array(Buffer.from("d")), letter],
    ]);
    const stats = await transport.stats(stream, "g");
    expect(stats.pending).toBe(0);
    expect(stats.deadLettered).toBe(1);
    await transport.append(stream, [bytes(2)]);
    const [second] = await transport.readNew(stream, "g", "a", 10, 0);
    await transport.deadLetter(stream, "g", must(second).id, bytes(2, 0));
    expect(await transport.deadLetters(stream, 10)).toEqual([bytes(2, 0), letter]);
    expect(await transport.deadLetters(stream, 1)).toEqual([bytes(2, 0)]);
    expect(await transport.deadLetters(freshStream(), 10)).toEqual([]);
  });

  it("reports stream statistics, zeros for a missing stream or group", async () => {
    const transport = open();
    const stream = freshStream();
    expect(await transport.stats(stream, "g")).toEqual({
      length: 0,
      pending: 0,
      oldestPendingMs: 0,
      deadLettered: 0,
    });
    await transport.ensureGroup(stream, "g");
    await transport.append(stream, [bytes(1), bytes(2), bytes(3)]);
    expect(await transport.stats(stream, "other")).toEqual({
      length: 3,
      pending: 0,
      oldestPendingMs: 0,
      deadLettered: 0,
    });
    const [first] = await transport.readNew(stream, "g", "a", 2, 0);
    await transport.deadLetter(stream, "g", must(first).id, bytes(0));
    await sleep(30);
    const stats = await transport.stats(stream, "g");
    expect(stats).toMatchObject({ length: 3, pending: 1, deadLettered: 1 });
    expect(stats.oldestPendingMs).toBeGreaterThan(0);
  });

  it("recreates a deleted group on read", async () => {
    const transport = open();
    const stream = freshStream();
    await transport.ensureGroup(stream, "g");
    await admin.del(prefix + stream);
    expect(await transport.readNew(stream, "g", "a", 10, 0)).toEqual([]);
    await transport.append(stream, [bytes(5)]);
    const entries = await transport.readNew(stream, "g", "a", 10, 0);
    expect(entries.map((entry) => entry.data)).toEqual([bytes(5)]);
  });

  it("waits in a blocking read for an entry another instance appends", async () => {
    const reader = open();
    const writer = open();
    const stream = freshStream();
    await reader.ensureGroup(stream, "g");
    const started = performance.now();
    const reading = reader.readNew(stream, "g", "a", 10, 3_000);
    await sleep(200);
    await writer.append(stream, [bytes(0, 1, 0xff)]);
    const entries = await reading;
    expect(entries.map((entry) => entry.data)).toEqual([bytes(0, 1, 0xff)]);
    expect(performance.now() - started).toBeLessThan(2_000);
    // Nothing new: a short block returns empty once it elapses.
    expect(await reader.readNew(stream, "g", "a", 10, 100)).toEqual([]);
  });

  it("fails fast when Redis is unreachable, and still closes", async () => {
    const transport = createRedisTransport({
      url: "redis://127.0.0.1:1",
      commandTimeoutMs: 500,
      keyPrefix: prefix,
      log,
    });
    const started = performance.now();
    await expect(transport.append("s", [bytes(1)])).rejects.toThrow();
    await expect(transport.readNew("s", "g", "a", 10, 1_000)).rejects.toThrow();
    await expect(transport.stats("s", "g")).rejects.toThrow();
    expect(performance.now() - started).toBeLessThan(3_000);
    await transport.close();
    await expect(transport.append("s", [bytes(1)])).rejects.toThrow(/closed/);
  });

  it("fails a blocking read promptly when its connection drops, then reads again", async () => {
    const transport = open();
    const stream = freshStream();
    await transport.ensureGroup(stream, "g");
    const reading = transport.readNew(stream, "g", "a", 10, 20_000);
    // It may fail before the KILL below returns: observed now, asserted after.
    reading.catch(() => {});
    await sleep(200);
    const clients = (await admin.client("LIST")) as string;
    const blocked = clients
      .split("\n")
      .find(
        (line) =>
          line.includes(` name=protomesh-jobs-blocking-${process.pid} `) &&
          line.includes(" flags=b ") &&
          line.includes(" cmd=xreadgroup"),
      );
    const id = /^id=(\d+) /.exec(blocked ?? "")?.[1];
    expect(id).toBeDefined();
    const started = performance.now();
    await admin.client("KILL", "ID", must(id));
    await expect(reading).rejects.toThrow(/closed/);
    expect(performance.now() - started).toBeLessThan(1_000);
    await sleep(300);
    await transport.append(stream, [bytes(3)]);
    const entries = await transport.readNew(stream, "g", "a", 10, 1_000);
    expect(entries.map((entry) => entry.data)).toEqual([bytes(3)]);
  });

  it("ends a blocking read promptly on close", async () => {
    const transport = createRedisTransport({ url: url ?? "", keyPrefix: prefix, log });
    const stream = freshStream();
    await transport.ensureGroup(stream, "g");
    const reading = transport.readNew(stream, "g", "a", 10, 20_000);
    await sleep(200);
    const started = performance.now();
    await transport.close();
    expect(await reading).toEqual([]);
    expect(performance.now() - started).toBeLessThan(1_000);
  });
});

function compareIds(a: string, b: string): number {
  const [aMs = 0n, aSeq = 0n] = a.split("-").map(BigInt);
  const [bMs = 0n, bSeq = 0n] = b.split("-").map(BigInt);
  return aMs === bMs ? Number(aSeq - bSeq) : Number(aMs - bMs);
}

function must<T>(value: T | undefined): T {
  if (value === undefined) throw new Error("expected a value");
  return value;
}
