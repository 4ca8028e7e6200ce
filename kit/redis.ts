import { Redis } from "ioredis";
import type { Log } from "./log.ts";

// Reconnection backoff: 100 ms doubling to 5 s, for as long as Redis stays away.
const RETRY_BASE_MS = 100;
const RETRY_MAX_MS = 5_000;

const noop = () => {};

/** How a connection to Redis behaves. */
export interface RedisConnectionOptions {
  readonly url: string;
  /** What the connection is for: in its CLIENT LIST name and in its log lines. */
  readonly name: string;
  /** Longest wait for the connection and for each command's reply. */
  readonly timeoutMs: number;
  /** False for a connection that bounds its own blocking reads, whose replies may come later. */
  readonly commandTimeout?: boolean;
  readonly log: Log;
}

/** One connection to Redis, which fails fast while Redis is away and reconnects by itself. */
export interface RedisConnection {
  /** The ioredis client; send commands through `usable()`. */
  readonly redis: Redis;
  /** Waits (within the timeout) for the first connection attempt, which the first use starts. */
  ready(): Promise<void>;
  /** The client, if it can take a command now; throws otherwise, as queueing would only wait. */
  usable(): Redis;
  /** Ends the connection: gracefully when it is up, at once when it is not or QUIT hangs. */
  close(): Promise<void>;
}

/**
 * Opens a connection lazily, so opening never throws. Commands sent while Redis is unreachable
 * fail at once (no offline queue) and are never resent over a later connection (a command lost
 * with its connection already failed its caller, who decides whether to retry); reconnection
 * goes on with backoff, and the first failure and the recovery are logged once each.
 */
export function openRedis(options: RedisConnectionOptions): RedisConnection {
  const { name, timeoutMs, log } = options;
  const redis = new Redis(options.url, {
    lazyConnect: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    autoResendUnfulfilledCommands: false,
    connectTimeout: timeoutMs,
    commandTimeout: options.commandTimeout === false ? undefined : timeoutMs,
    connectionName: `protomesh-${name}-${process.pid}`,
    disableClientInfo: true,
    retryStrategy: (attempt) =>
      Math.min(RETRY_BASE_MS * 2 ** Math.min(attempt - 1, 10), RETRY_MAX_MS),
  });
  let down = false;
  redis.on("error", (err: Error) => {
    if (down) return;
    down = true;
    log.warn({ err, connection: name }, "Redis is unreachable; reconnecting with backoff");
  });
  redis.on("ready", () => {
    if (!down) return;
    down = false;
    log.info({ connection: name }, "Redis is reachable again");
  });
  let first: Promise<void> | undefined;
  let attempted = false;
  return {
    redis,
    async ready() {
      if (attempted) return;
      // Without the offline queue a command sent before the socket is up fails at once,
      // so the first ones wait for the initial attempt (its failure is logged above).
      first ??= redis
        .connect()
        .then(noop, noop)
        .finally(() => {
          attempted = true;
        });
      await within(first, timeoutMs, () => new Error("connect timeout")).catch(noop);
    },
    usable() {
      if (redis.status === "ready") return redis;
      if (redis.status === "end") throw new Error("the Redis connection is closed");
      throw new Error(`Redis is unreachable (connection ${redis.status})`);
    },
    async close() {
      if (redis.status !== "ready") {
        redis.disconnect();
        return;
      }
      try {
        await within(redis.quit(), timeoutMs, () => new Error("QUIT timed out"));
      } catch {
        redis.disconnect();
      }
    },
  };
}

/** Settles like `promise`, or rejects with `onTimeout()` after `ms`. */
export function within<T>(promise: Promise<T>, ms: number, onTimeout: () => Error): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(onTimeout()), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
