import { createHash } from "node:crypto";
import type { Redis } from "ioredis";
import type { Log } from "../../kit/log.ts";
import { openRedis } from "../../kit/redis.ts";

/** A token bucket: `points` tokens at most, refilled continuously at `points` per `durationMs`. */
export interface BucketRule {
  readonly points: number;
  readonly durationMs: number;
}

/** The outcome of taking one token from a bucket. */
export interface BucketTake {
  readonly allowed: boolean;
  /** Whole tokens left after this take. */
  readonly remaining: number;
  /** Milliseconds until the bucket is full again. */
  readonly fullInMs: number;
  /** Milliseconds until one token is there again; 0 when the take was allowed. */
  readonly retryInMs: number;
}

/** A store of token buckets by key: one per process in memory, or shared through Redis. */
export interface BucketStore {
  take(key: string, rule: BucketRule): Promise<BucketTake>;
  close(): Promise<void>;
}

// A bucket is stored as its debt: how far it is from full, in microseconds times points (the
// unit in which one token costs durationUs and time repays `points` per microsecond), with the
// time of the last change. tokens = (points * durationUs - debt) / durationUs. Integers only, so
// a bucket of N admits exactly N; isExactRule keeps them below 2^53, where JavaScript numbers
// and Redis's Lua numbers hold them exactly. An absent bucket is full, so a key can expire as
// soon as its bucket is.

/** A bucket's state: its debt (microseconds times points) at time `atUs`. */
interface BucketState {
  readonly debt: number;
  readonly atUs: number;
}

/** Whether a rule's arithmetic stays exact: twice a full bucket's debt is below 2^53. */
export function isExactRule(rule: BucketRule): boolean {
  return Number.isSafeInteger(2 * rule.points * rule.durationMs * 1000);
}

/** Integer division of non-negative safe integers, rounded down, without float rounding. */
function floorDiv(a: number, b: number): number {
  return (a - (a % b)) / b;
}

function ceilDiv(a: number, b: number): number {
  return floorDiv(a + b - 1, b);
}

/**
 * One take at `nowUs` from a bucket in `state` (undefined: full): the outcome and the new state.
 * A refused call takes no token, so clients that keep retrying do not starve themselves.
 */
function takeToken(
  state: BucketState | undefined,
  nowUs: number,
  rule: BucketRule,
): { readonly take: BucketTake; readonly state: BucketState } {
  const cost = rule.durationMs * 1000;
  const full = cost * rule.points;
  const elapsed = Math.max(0, nowUs - (state?.atUs ?? nowUs));
  const debt = elapsed >= cost ? 0 : Math.max(0, (state?.debt ?? 0) - elapsed * rule.points);
  const msOf = (debtOver: number) => ceilDiv(debtOver, rule.points * 1000);
  if (debt + cost > full) {
    const take = {
      allowed: false,
      remaining: 0,
      fullInMs: msOf(debt),
      retryInMs: msOf(debt + cost - full),
    };
    return { take, state: { debt, atUs: nowUs } };
  }
  const after = debt + cost;
  const remaining = floorDiv(full - after, cost);
  return {
    take: { allowed: true, remaining, fullInMs: msOf(after), retryInMs: 0 },
    state: { debt: after, atUs: nowUs },
  };
}

/**
 * Token buckets in this process's memory, on a monotonic clock (`now`, in milliseconds).
 * Buckets that have filled up are dropped once a minute, so memory follows the active clients.
 */
export function createMemoryBuckets(now: () => number = () => performance.now()): BucketStore {
  const buckets = new Map<string, { state: BucketState; fullAtUs: number }>();
  const nowUs = () => Math.round(now() * 1000);
  const sweep = setInterval(() => {
    const at = nowUs();
    for (const [key, bucket] of buckets) if (bucket.fullAtUs <= at) buckets.delete(key);
  }, 60_000);
  sweep.unref();
  return {
    async take(key, rule) {
      const at = nowUs();
      const { take, state } = takeToken(buckets.get(key)?.state, at, rule);
      buckets.set(key, { state, fullAtUs: at + take.fullInMs * 1000 });
      return take;
    },
    async close() {
      clearInterval(sweep);
      buckets.clear();
    },
  };
}

// The same arithmetic as takeToken, atomic in Redis. The clock is Redis's own (TIME), so replicas
// whose clocks disagree still share one bucket; Redis 5+ replicates a script's effects, not the
// script, which makes TIME safe here. math.fmod is C's fmod: exact on integers, like JS's %.
// ARGV[3] is the time, on that clock in microseconds, at which the caller stops waiting: a check
// that reaches Redis later (held by a stalled network) was decided elsewhere and takes nothing.
// Every reply ends with Redis's time, from which the caller keeps its clocks' offset.
const takeScript = `
local points = tonumber(ARGV[1])
local cost = tonumber(ARGV[2]) * 1000
local full = cost * points
local function floor_div(a, b) return (a - math.fmod(a, b)) / b end
local function ms_of(debt) return floor_div(debt + points * 1000 - 1, points * 1000) end
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
if now > tonumber(ARGV[3]) then
  return {-1, 0, 0, 0, now}
end
local debt = 0
local stored = redis.call('GET', KEYS[1])
if stored then
  local stored_debt, at = string.match(stored, '^(%d+) (%d+)$')
  local elapsed = math.max(0, now - tonumber(at))
  if elapsed < cost then debt = math.max(0, tonumber(stored_debt) - elapsed * points) end
end
if debt + cost > full then
  return {0, 0, ms_of(debt), ms_of(debt + cost - full), now}
end
local after = debt + cost
local full_in = ms_of(after)
redis.call('SET', KEYS[1], string.format('%.0f %.0f', after, now), 'PX', full_in)
return {1, floor_div(full - after, cost), full_in, 0, now}
`;
const takeScriptSha = createHash("sha1").update(takeScript).digest("hex");

/** Options of the Redis bucket store. */
export interface RedisBucketOptions {
  /** REDIS_URL, e.g. redis://127.0.0.1:6379. */
  readonly url: string;
  /** Longest wait for a connection or a reply; a take that would wait longer fails. */
  readonly timeoutMs: number;
  /** Prepended to every bucket key. */
  readonly keyPrefix: string;
  readonly log: Log;
}

/**
 * Token buckets shared through Redis by every process that uses the same Redis and prefix.
 * A take fails fast (never queues) while Redis is unreachable, and within `timeoutMs` when it
 * does not answer; the caller decides what to do then. Reconnection continues with backoff.
 */
export function createRedisBuckets(options: RedisBucketOptions): BucketStore {
  const { timeoutMs, keyPrefix, log } = options;
  // A rate-limit check is in the path of every request: failing over at once beats queueing.
  const connection = openRedis({ url: options.url, name: "rate-limit", timeoutMs, log });
  let closed = false;
  const clock = createRedisClock(timeoutMs);

  const run = async (redis: Redis, key: string, rule: BucketRule): Promise<unknown> => {
    // The deadline is taken as each command is sent, since each has its own timeout.
    const args = () =>
      [1, keyPrefix + key, rule.points, rule.durationMs, clock.deadline()] as const;
    try {
      return await redis.evalsha(takeScriptSha, ...args());
    } catch (err) {
      if (!(err instanceof Error && err.message.startsWith("NOSCRIPT"))) throw err;
      // EVAL loads the script into Redis's cache, so the next EVALSHA finds it.
      return redis.eval(takeScript, ...args());
    }
  };

  return {
    async take(key, rule) {
      if (closed) throw new Error("the rate-limit store is closed");
      await connection.ready();
      const redis = connection.usable();
      if (!clock.synced()) await clock.sync(redis);
      const reply = await run(redis, key, rule);
      if (!Array.isArray(reply) || reply.length !== 5 || !reply.every(Number.isInteger)) {
        throw new Error(`unexpected reply from the rate-limit script: ${JSON.stringify(reply)}`);
      }
      const [outcome, remaining, fullInMs, retryInMs, redisUs] = reply as number[];
      clock.observe(redisUs ?? 0);
      // Only when the offset was stale; the caller decides, as when Redis does not answer.
      if (outcome === -1) throw new Error("Redis received the check after its deadline");
      return {
        allowed: outcome === 1,
        remaining: remaining ?? 0,
        fullInMs: fullInMs ?? 0,
        retryInMs: retryInMs ?? 0,
      };
    },
    async close() {
      if (closed) return;
      closed = true;
      await connection.close();
    },
  };
}

/**
 * Deadlines on Redis's clock. The offset between Redis's clock and this process's monotonic one
 * is taken from the last reply: Redis's time when it ran the command, minus ours when the reply
 * arrived. That is never more than the true offset (the reply left Redis before it arrived), so
 * a deadline errs early by at most that reply's round trip, never late, whatever the two clocks
 * read; a step of Redis's clock is corrected by the next reply.
 */
function createRedisClock(timeoutMs: number) {
  const localUs = () => Math.floor(performance.now() * 1000);
  let offsetUs: number | undefined;
  let syncing: Promise<void> | undefined;
  const observe = (redisUs: number) => {
    offsetUs = redisUs - localUs();
  };
  return {
    observe,
    synced: () => offsetUs !== undefined,
    /** Reads Redis's TIME once, for the first deadline (concurrent first takes share it). */
    sync(redis: Redis): Promise<void> {
      syncing ??= redis
        .time()
        .then(([seconds, micros]) => observe(Number(seconds) * 1_000_000 + Number(micros)))
        .finally(() => {
          syncing = undefined;
        });
      return syncing;
    },
    /** The time, on Redis's clock in microseconds, at which a command sent now times out. */
    deadline: () => localUs() + timeoutMs * 1000 + (offsetUs ?? 0),
  };
}
