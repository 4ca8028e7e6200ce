import type { Log } from "../log.ts";
import { openRedis, type RedisConnection, within } from "../redis.ts";
import {
  asArray,
  asArrayOrEmpty,
  asNumber,
  asText,
  DATA_FIELD,
  hasCode,
  parseEntry,
  toBuffer,
} from "./redis-replies.ts";
import {
  deadLetterStream,
  type StreamEntry,
  type StreamStats,
  type StreamTransport,
} from "./stream-transport.ts";

/** Options of the Redis Streams transport. */
export interface RedisTransportOptions {
  /** REDIS_URL, e.g. redis://127.0.0.1:6379. */
  readonly url: string;
  /** Longest wait for any command's reply (a blocking read: its block time plus this). */
  readonly commandTimeoutMs?: number;
  /** Approximate MAXLEN XADD trims streams to. */
  readonly maxLen?: number;
  /** Prepended to stream names to make the Redis keys. */
  readonly keyPrefix?: string;
  readonly log: Log;
}

type Arg = string | Buffer | number;
type Command = [name: string, ...args: Arg[]];

const noop = () => {};

/**
 * Creates the Redis Streams transport. Connections open lazily, so creating it never throws;
 * while Redis is unreachable commands fail fast and reconnection continues with backoff.
 */
export function createRedisTransport(options: RedisTransportOptions): StreamTransport {
  const timeoutMs = options.commandTimeoutMs ?? 5_000;
  const maxLen = options.maxLen ?? 1_000_000;
  const prefix = options.keyPrefix ?? "protomesh:";
  const log = options.log;
  const commands = openRedis({ url: options.url, name: "jobs-commands", timeoutMs, log });
  // A blocking read holds its connection for up to BLOCK ms, so each consumer gets its own:
  // consumers of several streams in one process must not wait for one another.
  const blockingByConsumer = new Map<
    string,
    { connection: RedisConnection; turn: Promise<void> }
  >();
  let closed = false;
  let closing: Promise<void> | undefined;

  const keyOf = (stream: string) => prefix + stream;

  const assertOpen = () => {
    if (closed) throw new Error("the Redis transport is closed");
  };

  const send = async (command: Command): Promise<unknown> => {
    assertOpen();
    await commands.ready();
    return commands.usable().callBuffer(...command);
  };

  /** Runs commands in one round trip, atomically with `multi`; one [error, reply] each. */
  const batch = async (
    list: readonly Command[],
    atomic: boolean,
  ): Promise<[error: Error | null, reply: unknown][]> => {
    assertOpen();
    await commands.ready();
    const redis = commands.usable();
    const chain = atomic ? redis.multi() : redis.pipeline();
    for (const command of list) chain.callBuffer(...command);
    const results = await chain.exec();
    if (results === null) throw new Error("Redis discarded the transaction");
    return results;
  };

  const batchOrThrow = async (list: readonly Command[], atomic: boolean): Promise<unknown[]> =>
    (await batch(list, atomic)).map(([error, reply]) => {
      if (error) throw error;
      return reply;
    });

  const blockingRead = (consumer: string, command: Command, blockMs: number): Promise<unknown> => {
    let lane = blockingByConsumer.get(consumer);
    if (!lane) {
      lane = {
        connection: openRedis({
          url: options.url,
          name: "jobs-blocking",
          timeoutMs,
          // Each read bounds itself: its reply may come after BLOCK ms.
          commandTimeout: false,
          log,
        }),
        turn: Promise.resolve(),
      };
      blockingByConsumer.set(consumer, lane);
    }
    const { connection } = lane;
    // Reads of one consumer on its connection run one after the other: queueing them here
    // starts each one's reply timer only when it is actually sent.
    const turn = lane.turn.then(async () => {
      if (closed) return null;
      await connection.ready();
      const redis = connection.usable();
      let onClose = noop;
      // A read cut off with its connection is never answered nor failed by ioredis (we
      // disabled resending it): fail it when the socket closes instead of at the timeout.
      const lost = new Promise<never>((_, reject) => {
        onClose = () => reject(new Error("the Redis connection closed during a blocking read"));
        redis.once("close", onClose);
      });
      try {
        return await within(
          Promise.race([redis.callBuffer(...command), lost]),
          blockMs + timeoutMs,
          () => {
            // No reply long after the block ended: the socket is likely dead without having
            // noticed (a network partition), so replace it rather than wait on it forever.
            if (!closed) redis.disconnect(true);
            return new Error(`XREADGROUP got no reply within ${blockMs + timeoutMs} ms`);
          },
        );
      } finally {
        redis.off("close", onClose);
      }
    });
    lane.turn = turn.then(noop, noop);
    return turn;
  };

  const ensureGroup = async (stream: string, group: string): Promise<void> => {
    try {
      await send(["XGROUP", "CREATE", keyOf(stream), group, "0", "MKSTREAM"]);
    } catch (err) {
      if (!hasCode(err, "BUSYGROUP")) throw err;
    }
  };

  const xadd = (key: string, data: Uint8Array): Command => [
    "XADD",
    key,
    "MAXLEN",
    "~",
    maxLen,
    "*",
    DATA_FIELD,
    toBuffer(data),
  ];

  /**
   * The delivery counters of entries just claimed by `consumer`, read back from the pending
   * list; an entry missing or pending to another consumer was taken over meanwhile.
   */
  const ownDeliveries = async (
    key: string,
    group: string,
    consumer: string,
    ids: readonly string[],
  ): Promise<Map<string, number>> => {
    const found = new Map<string, number>();
    if (ids.length === 0) return found;
    const replies = await batchOrThrow(
      ids.map((id): Command => ["XPENDING", key, group, id, id, 1]),
      false,
    );
    for (const reply of replies) {
      const row = asArray(reply)[0];
      if (row === undefined) continue;
      const [id, owner, , deliveries] = asArray(row);
      if (asText(owner) === consumer) found.set(asText(id), asNumber(deliveries));
    }
    return found;
  };

  /** Acknowledges entries deleted from the stream (trimmed) that were still pending. */
  const dropDeleted = async (key: string, group: string, ids: readonly string[]) => {
    if (ids.length === 0) return;
    await send(["XACK", key, group, ...ids]);
  };

  return {
    async append(stream, entries) {
      if (entries.length === 0) return;
      const key = keyOf(stream);
      await batchOrThrow(
        entries.map((data) => xadd(key, data)),
        true,
      );
    },

    ensureGroup,

    async readNew(stream, group, consumer, count, blockMs) {
      assertOpen();
      // COUNT 0 would mean "no limit" to Redis.
      if (count <= 0) return [];
      const key = keyOf(stream);
      const block: Arg[] = blockMs > 0 ? ["BLOCK", Math.ceil(blockMs)] : [];
      const command: Command = [
        "XREADGROUP",
        "GROUP",
        group,
        consumer,
        "COUNT",
        count,
        ...block,
        "STREAMS",
        key,
        ">",
      ];
      let reply: unknown;
      try {
        reply = blockMs > 0 ? await blockingRead(consumer, command, blockMs) : await send(command);
      } catch (err) {
        if (closed) return [];
        if (!hasCode(err, "NOGROUP")) throw err;
        // The stream or the group was deleted under us (FLUSHDB, a manual DEL): recreate it.
        log.warn({ stream, group }, "consumer group missing; recreating it");
        await ensureGroup(stream, group);
        return [];
      }
      if (reply === null) return [];
      const entries: StreamEntry[] = [];
      for (const streamReply of asArray(reply)) {
        for (const raw of asArray(asArray(streamReply)[1])) {
          const entry = parseEntry(raw, log);
          if (entry?.data) entries.push({ id: entry.id, data: entry.data, deliveries: 1 });
        }
      }
      return entries;
    },

    async claimIdle(stream, group, consumer, minIdleMs, count) {
      if (count <= 0) return [];
      const key = keyOf(stream);
      const claimed: { id: string; data: Uint8Array }[] = [];
      const deleted: string[] = [];
      let cursor = "0-0";
      // XAUTOCLAIM examines at most 10 × COUNT pending entries per call, so idle entries
      // behind many busy ones need the cursor followed, up to one pass over the list.
      do {
        let reply: unknown;
        try {
          reply = await send([
            "XAUTOCLAIM",
            key,
            group,
            consumer,
            Math.max(0, Math.floor(minIdleMs)),
            cursor,
            "COUNT",
            count - claimed.length,
          ]);
        } catch (err) {
          if (hasCode(err, "NOGROUP")) return [];
          throw err;
        }
        const [next, entries, deletedIds] = asArray(reply);
        cursor = asText(next);
        for (const raw of asArray(entries)) {
          const entry = parseEntry(raw, log);
          if (entry?.data) claimed.push({ id: entry.id, data: entry.data });
          // Redis 6.2 returns a trimmed entry with nil fields and leaves it pending.
          else if (entry) deleted.push(entry.id);
        }
        // Redis 7 lists trimmed entries separately (already out of the pending list).
        if (deletedIds !== undefined)
          for (const id of asArray(deletedIds)) deleted.push(asText(id));
      } while (cursor !== "0-0" && claimed.length < count);
      await dropDeleted(key, group, deleted);
      const deliveries = await ownDeliveries(
        key,
        group,
        consumer,
        claimed.map((entry) => entry.id),
      );
      const result: StreamEntry[] = [];
      for (const entry of claimed) {
        const counter = deliveries.get(entry.id);
        if (counter !== undefined) result.push({ ...entry, deliveries: counter });
      }
      return result;
    },

    async redeliver(stream, group, consumer, id, minIdleMs) {
      const key = keyOf(stream);
      let reply: unknown;
      try {
        reply = await send([
          "XCLAIM",
          key,
          group,
          consumer,
          Math.max(0, Math.floor(minIdleMs)),
          id,
        ]);
      } catch (err) {
        if (hasCode(err, "NOGROUP")) return undefined;
        throw err;
      }
      const entry = parseEntry(asArray(reply)[0], log);
      if (!entry) return undefined;
      if (!entry.data) {
        await dropDeleted(key, group, [id]);
        return undefined;
      }
      const deliveries = (await ownDeliveries(key, group, consumer, [entry.id])).get(entry.id);
      return deliveries === undefined ? undefined : { id: entry.id, data: entry.data, deliveries };
    },

    async ack(stream, group, id) {
      await send(["XACK", keyOf(stream), group, id]);
    },

    async deadLetter(stream, group, id, deadLetter) {
      const key = keyOf(stream);
      await batchOrThrow(
        [xadd(keyOf(deadLetterStream(stream)), deadLetter), ["XACK", key, group, id]],
        true,
      );
    },

    async stats(stream, group): Promise<StreamStats> {
      const key = keyOf(stream);
      const [length, summary, oldest, dead] = await batch(
        [
          ["XLEN", key],
          ["XPENDING", key, group],
          ["XPENDING", key, group, "-", "+", 1],
          ["XLEN", keyOf(deadLetterStream(stream))],
        ],
        false,
      );
      const reply = (result: [Error | null, unknown] | undefined): unknown => {
        if (!result) throw new Error("Redis returned too few replies");
        const [error, value] = result;
        if (error && !hasCode(error, "NOGROUP")) throw error;
        return error ? undefined : value;
      };
      const pendingSummary = reply(summary);
      const oldestRow = asArrayOrEmpty(reply(oldest))[0];
      return {
        length: asNumber(reply(length)),
        pending: pendingSummary === undefined ? 0 : asNumber(asArray(pendingSummary)[0]),
        oldestPendingMs: oldestRow === undefined ? 0 : asNumber(asArray(oldestRow)[2]),
        deadLettered: asNumber(reply(dead)),
      };
    },

    async deadLetters(stream, count) {
      if (count <= 0) return [];
      const reply = await send([
        "XREVRANGE",
        keyOf(deadLetterStream(stream)),
        "+",
        "-",
        "COUNT",
        count,
      ]);
      const letters: Uint8Array[] = [];
      for (const raw of asArray(reply)) {
        const entry = parseEntry(raw, log);
        if (entry?.data) letters.push(entry.data);
      }
      return letters;
    },

    close() {
      closing ??= (async () => {
        closed = true;
        // Dropping the socket is what ends a read blocked in Redis; it then resolves to [].
        for (const { connection } of blockingByConsumer.values()) connection.redis.disconnect();
        await commands.close();
      })();
      return closing;
    },
  };
}
