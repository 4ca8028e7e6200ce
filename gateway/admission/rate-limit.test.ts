import { randomUUID } from "node:crypto";
import { createServer, type Server, type Socket } from "node:net";
import type { DescMethod } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { Redis } from "ioredis";
import { pino } from "pino";
import { Registry } from "prom-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { FileService } from "../../gen/protomesh/file/v1/file_pb.ts";
import { UserService } from "../../gen/protomesh/user/v1/user_pb.ts";
import { ConfigError, loadConfig } from "../../kit/config.ts";
import { deleteRedisKeys, testRedisUrl } from "../../test/support/redis.ts";
import { delay, within } from "../../test/support/settle.ts";
import { startTcpProxy, type TcpProxy } from "../../test/support/tcp-proxy.ts";
import {
  clientAddressOf,
  clientKeyOf,
  createRateLimits,
  type RateDecision,
  type RateLimits,
  rateLimitClassOf,
  rateLimitConfigShape,
  rateLimitError,
  rateLimitHeaders,
} from "./rate-limit.ts";

const schema = z.object(rateLimitConfigShape);
const configOf = (env: Record<string, string>) => loadConfig(schema, env);

const getMe = UserService.method.getMe; // no class: "default"
const updateMe = UserService.method.updateMe; // no class: "default"
const login = UserService.method.login; // "auth"
const register = UserService.method.register; // "auth"
const upload = FileService.method.upload; // "upload"

const silent = pino({ level: "silent" });

/** A fake monotonic clock the in-memory buckets read. */
function fakeClock() {
  let now = 1_000_000;
  return {
    now: () => now,
    advance(ms: number) {
      now += ms;
    },
  };
}

async function takeMany(limits: RateLimits, client: string, method: DescMethod, count: number) {
  const decisions: RateDecision[] = [];
  for (let i = 0; i < count; i++) decisions.push(await limits.take(client, method));
  return decisions;
}

/** Whether `client` gets one more call of `method` through. */
async function admits(limits: RateLimits, client: string, method: DescMethod): Promise<boolean> {
  return (await limits.take(client, method)).allowed;
}

/** The value of one series of a counter in Prometheus text, or 0 when it has none yet. */
async function counterValue(registry: Registry, series: string): Promise<number> {
  const text = await registry.metrics();
  const line = text.split("\n").find((candidate) => candidate.startsWith(`${series} `));
  return line === undefined ? 0 : Number(line.slice(series.length + 1));
}

describe("rate-limit configuration", () => {
  it("has a limit for every class the protos use, and none from X-Forwarded-For", () => {
    const config = configOf({});
    expect(config.RATE_LIMITS).toEqual({
      default: { points: 100, durationMs: 1_000 },
      auth: { points: 10, durationMs: 60_000 },
      upload: { points: 10, durationMs: 60_000 },
    });
    expect(config.RATE_LIMIT_ACCOUNT).toEqual({ points: 5, durationMs: 60_000 });
    expect(config.RATE_LIMIT_TRUSTED_PROXIES).toBe(0);
    expect(config.REDIS_URL).toBeUndefined();
    expect([getMe, login, register, upload].map(rateLimitClassOf)).toEqual([
      "default",
      "auth",
      "auth",
      "upload",
    ]);
  });

  it("overrides the defaults class by class", () => {
    const config = configOf({
      RATE_LIMITS: " auth = 3/10s , upload=off,reports=7/h,default=20/500ms",
      RATE_LIMIT_ACCOUNT: "off",
    });
    expect(config.RATE_LIMITS).toEqual({
      default: { points: 20, durationMs: 500 },
      auth: { points: 3, durationMs: 10_000 },
      upload: "off",
      reports: { points: 7, durationMs: 3_600_000 },
    });
    expect(config.RATE_LIMIT_ACCOUNT).toBe("off");
  });

  it.each([
    ["RATE_LIMITS", "auth=5 per minute", /RATE_LIMITS: "5 per minute" is not <points>\/<duration>/],
    ["RATE_LIMITS", "auth=0/1m", /RATE_LIMITS: "0\/1m" is not/],
    ["RATE_LIMITS", "auth=5/0s", /RATE_LIMITS: "5\/0s" is not/],
    ["RATE_LIMITS", "auth", /RATE_LIMITS: "auth" is not <class>=<points>\/<duration>/],
    ["RATE_LIMITS", "auth=5/1m,auth=6/1m", /RATE_LIMITS: class "auth" is given twice/],
    ["RATE_LIMITS", "auth=100000000/24h", /RATE_LIMITS: "100000000\/24h" is too large/],
    ["RATE_LIMIT_ACCOUNT", "lots", /RATE_LIMIT_ACCOUNT: "lots" is not/],
    ["RATE_LIMIT_TRUSTED_PROXIES", "-1", /RATE_LIMIT_TRUSTED_PROXIES: /],
    ["RATE_LIMIT_REDIS_TIMEOUT_MS", "0", /RATE_LIMIT_REDIS_TIMEOUT_MS: /],
    ["REDIS_URL", "http://127.0.0.1:6379", /REDIS_URL: /],
  ])("rejects %s=%j, naming the variable", (variable, value, message) => {
    expect(() => configOf({ [variable]: value })).toThrow(ConfigError);
    expect(() => configOf({ [variable]: value })).toThrow(message);
  });
});

describe("in-memory rate limits", () => {
  const open = (env: Record<string, string>) => {
    const clock = fakeClock();
    const registry = new Registry();
    const limits = createRateLimits(configOf(env), { log: silent, registry, now: clock.now });
    return { limits, clock, registry };
  };
  const env = { RATE_LIMITS: "default=3/1s,auth=2/1m,upload=1/1m", RATE_LIMIT_ACCOUNT: "2/1m" };

  it("admits exactly the bucket, then rejects with Retry-After and RateLimit headers", async () => {
    const { limits } = open(env);
    const decisions = await takeMany(limits, "ip:203.0.113.7", getMe, 5);
    expect(decisions.map((d) => d.allowed)).toEqual([true, true, true, false, false]);
    expect(decisions.map((d) => d.remaining)).toEqual([2, 1, 0, 0, 0]);
    expect(rateLimitHeaders(decisions[0] as RateDecision)).toEqual({
      "ratelimit-limit": "3",
      "ratelimit-remaining": "2",
      "ratelimit-reset": "1",
      "ratelimit-policy": "3;w=1",
    });
    const rejected = decisions[3] as RateDecision;
    expect(rejected).toMatchObject({ allowed: false, class: "default", scope: "client" });
    expect(rejected.retryAfterSeconds).toBe(1);
    expect(rateLimitHeaders(rejected)).toEqual({
      "ratelimit-limit": "3",
      "ratelimit-remaining": "0",
      "ratelimit-reset": "1",
      "ratelimit-policy": "3;w=1",
      "retry-after": "1",
    });
    // A slow class: one token a minute, so the wait is the whole minute.
    const uploads = await takeMany(limits, "sub:user-1", upload, 2);
    expect(uploads.map((d) => d.allowed)).toEqual([true, false]);
    expect(uploads[1]?.retryAfterSeconds).toBe(60);
    expect(rateLimitHeaders(uploads[1] as RateDecision)["retry-after"]).toBe("60");
    await limits.close();
  });

  it("refills continuously: one token per duration/points, up to the bucket", async () => {
    const { limits, clock } = open(env);
    await takeMany(limits, "sub:user-1", getMe, 3);
    clock.advance(300); // less than the 333 ms one token takes
    expect(await admits(limits, "sub:user-1", getMe)).toBe(false);
    clock.advance(34);
    const refilled = await takeMany(limits, "sub:user-1", getMe, 2);
    expect(refilled.map((d) => d.allowed)).toEqual([true, false]);
    clock.advance(10_000); // far longer than a refill: the bucket holds 3, no more
    const full = await takeMany(limits, "sub:user-1", getMe, 4);
    expect(full.map((d) => d.allowed)).toEqual([true, true, true, false]);
    await limits.close();
  });

  it("keeps one bucket per class, shared by the RPCs of that class", async () => {
    const { limits } = open(env);
    await takeMany(limits, "sub:user-1", getMe, 3);
    const next = [updateMe, login, register, login, upload];
    const admitted = [];
    for (const method of next) admitted.push(await admits(limits, "sub:user-1", method));
    expect(admitted).toEqual([false, true, true, false, true]);
    await limits.close();
  });

  it("keeps one bucket per client", async () => {
    const { limits } = open(env);
    await takeMany(limits, "sub:user-1", getMe, 4);
    expect(await admits(limits, "sub:user-2", getMe)).toBe(true);
    expect(await admits(limits, "ip:203.0.113.7", getMe)).toBe(true);
    await limits.close();
  });

  it("limits logins and registrations per account, whichever client sends them", async () => {
    const { limits, registry } = open(env);
    const first = await limits.takeAccount("Ada@Example.com", login);
    const second = await limits.takeAccount(" ada@example.com ", register);
    const third = await limits.takeAccount("ADA@example.com", login);
    expect([first, second, third].map((d) => d.allowed)).toEqual([true, true, false]);
    expect(third).toMatchObject({ scope: "account", class: "auth", limit: 2 });
    expect(third.retryAfterSeconds).toBe(30);
    expect((await limits.takeAccount("grace@example.com", login)).allowed).toBe(true);
    // The account's bucket is not the client's.
    expect(await admits(limits, "ip:203.0.113.7", login)).toBe(true);
    expect(
      await counterValue(registry, 'gateway_rate_limited_total{class="auth",scope="account"}'),
    ).toBe(1);
    await limits.close();
  });

  it("lifts the limit of a class set to off, and sends no headers for it", async () => {
    const { limits } = open({ RATE_LIMITS: "auth=off", RATE_LIMIT_ACCOUNT: "off" });
    const decisions = await takeMany(limits, "ip:203.0.113.7", login, 50);
    expect(decisions.every((d) => d.allowed)).toBe(true);
    expect((await limits.takeAccount("ada@example.com", login)).allowed).toBe(true);
    expect(rateLimitHeaders(decisions[0] as RateDecision)).toEqual({});
    await limits.close();
  });

  it("counts rejections by class in gateway_rate_limited_total", async () => {
    const { limits, registry } = open(env);
    await takeMany(limits, "sub:user-1", getMe, 5);
    await takeMany(limits, "sub:user-1", upload, 4);
    expect(
      await counterValue(registry, 'gateway_rate_limited_total{class="default",scope="client"}'),
    ).toBe(2);
    expect(
      await counterValue(registry, 'gateway_rate_limited_total{class="upload",scope="client"}'),
    ).toBe(3);
    expect(
      await counterValue(registry, 'gateway_rate_limited_total{class="auth",scope="client"}'),
    ).toBe(0);
    await limits.close();
  });

  it("turns a rejection into resource_exhausted carrying the headers", async () => {
    const { limits } = open(env);
    const [, rejected] = await takeMany(limits, "sub:user-1", upload, 2);
    const error = rateLimitError(rejected as RateDecision);
    expect(error.code).toBe(Code.ResourceExhausted);
    expect(error.rawMessage).toBe("too many requests for upload calls: retry in 60 s");
    expect(error.metadata.get("retry-after")).toBe("60");
    expect(error.metadata.get("ratelimit-remaining")).toBe("0");
    await limits.close();
  });
});

describe("client keys", () => {
  it("uses the token's subject, else the address", () => {
    expect(clientKeyOf("user-1", "203.0.113.7")).toBe("sub:user-1");
    expect(clientKeyOf(undefined, "203.0.113.7")).toBe("ip:203.0.113.7");
    expect(clientKeyOf("", "203.0.113.7")).toBe("ip:203.0.113.7");
    expect(clientKeyOf(undefined, undefined)).toBe("ip:unknown");
  });

  it("unwraps IPv4-mapped addresses and cuts IPv6 to its /64", () => {
    expect(clientKeyOf(undefined, "::ffff:203.0.113.7")).toBe("ip:203.0.113.7");
    expect(clientKeyOf(undefined, "::FFFF:cb00:7107")).toBe("ip:203.0.113.7");
    const host = "ip:2001:db8:0:1::/64";
    expect(clientKeyOf(undefined, "2001:0db8:0000:0001:aaaa:bbbb:cccc:dddd")).toBe(host);
    expect(clientKeyOf(undefined, "2001:db8:0:1::9")).toBe(host);
    expect(clientKeyOf(undefined, "2001:db8::1:2:3:4:5")).toBe("ip:2001:db8:0:1::/64");
    expect(clientKeyOf(undefined, "fe80::1%eth0")).toBe("ip:fe80::/64");
    expect(clientKeyOf(undefined, "::1")).toBe("ip:::/64");
  });

  it("reads X-Forwarded-For only as far as trusted proxies appended to it", () => {
    const socket = "10.0.0.2";
    const forwarded = "198.51.100.1, 203.0.113.7, 10.0.0.1";
    expect(clientAddressOf(socket, forwarded, 0)).toBe(socket);
    expect(clientAddressOf(socket, forwarded, 1)).toBe("10.0.0.1");
    expect(clientAddressOf(socket, forwarded, 2)).toBe("203.0.113.7");
    expect(clientAddressOf(socket, forwarded, 5)).toBe("198.51.100.1");
    expect(clientAddressOf(socket, ["198.51.100.1", "203.0.113.7"], 1)).toBe("203.0.113.7");
    expect(clientAddressOf(socket, "203.0.113.7:4711", 1)).toBe("203.0.113.7");
    expect(clientAddressOf(socket, "[2001:db8::7]:4711", 1)).toBe("2001:db8::7");
    expect(clientAddressOf(socket, "unknown", 1)).toBe(socket);
    expect(clientAddressOf(socket, undefined, 1)).toBe(socket);
  });
});

const url = testRedisUrl;

describe.skipIf(!url)("rate limits shared through Redis", () => {
  const prefix = `test:rate-limit:${randomUUID()}:`;
  const opened: RateLimits[] = [];

  /** One gateway replica's rate limits: its own registry and its own Redis connection. */
  const replica = (env: Record<string, string>, log = silent) => {
    const registry = new Registry();
    const config = configOf({
      REDIS_URL: url ?? "",
      RATE_LIMIT_KEY_PREFIX: prefix,
      RATE_LIMIT_REDIS_TIMEOUT_MS: "2000",
      ...env,
    });
    const limits = createRateLimits(config, { log, registry });
    opened.push(limits);
    return { limits, registry };
  };

  afterAll(async () => {
    await Promise.all(opened.map((limits) => limits.close()));
    await deleteRedisKeys(url ?? "", prefix);
  });

  it("admits 100 to 102 of a burst of 1,000 against a limit of 100 on two replicas", async () => {
    const env = { RATE_LIMITS: "default=100/1m" };
    const replicas = [replica(env), replica(env)] as const;
    const client = `sub:burst-${randomUUID()}`;
    const decisions = await Promise.all(
      Array.from({ length: 1_000 }, (_, i) => replicas[i % 2 ? 1 : 0].limits.take(client, getMe)),
    );
    const admitted = decisions.filter((d) => d.allowed).length;
    expect(admitted).toBeGreaterThanOrEqual(100);
    expect(admitted).toBeLessThanOrEqual(102);
    expect(decisions.filter((d) => !d.allowed).every((d) => (d.retryAfterSeconds ?? 0) > 0)).toBe(
      true,
    );
    let rejected = 0;
    for (const { registry } of replicas) {
      rejected += await counterValue(
        registry,
        'gateway_rate_limited_total{class="default",scope="client"}',
      );
      // Every check was Redis's: none fell back to a replica's own memory.
      expect(await counterValue(registry, "gateway_rate_limit_fallbacks_total")).toBe(0);
    }
    expect(rejected).toBe(1_000 - admitted);
  });

  it("refills on Redis's clock and lets the bucket's key expire once it is full", async () => {
    const { limits } = replica({ RATE_LIMITS: "default=2/400ms" });
    const client = `sub:refill-${randomUUID()}`;
    const key = `${prefix}client:default:${client}`;
    const admin = new Redis(url ?? "");
    try {
      const decisions = await takeMany(limits, client, getMe, 3);
      expect(decisions.map((d) => d.allowed)).toEqual([true, true, false]);
      const ttl = await admin.pttl(key);
      expect(ttl).toBeGreaterThan(0);
      expect(ttl).toBeLessThanOrEqual(400);
      await delay(250); // one token comes back every 200 ms
      const refilled = await takeMany(limits, client, getMe, 2);
      expect(refilled.map((d) => d.allowed)).toEqual([true, false]);
      await delay(500);
      expect(await admin.exists(key)).toBe(0);
    } finally {
      await admin.quit();
    }
  });

  it("shares the per-account limit between replicas", async () => {
    const env = { RATE_LIMIT_ACCOUNT: "3/1m" };
    const [one, two] = [replica(env).limits, replica(env).limits];
    const email = `${randomUUID()}@example.com`;
    const decisions = [
      await one.takeAccount(email, login),
      await two.takeAccount(email, register),
      await one.takeAccount(email.toUpperCase(), login),
      await two.takeAccount(email, login),
    ];
    expect(decisions.map((d) => d.allowed)).toEqual([true, true, true, false]);
    expect(decisions[3]?.retryAfterSeconds).toBe(20);
  });
});

describe.skipIf(!url)("rate limits through a Redis that stalls", () => {
  const prefix = `test:rate-limit:${randomUUID()}:`;
  let proxy: TcpProxy;

  beforeAll(async () => {
    proxy = await startTcpProxy(Number(new URL(url ?? "").port || 6379));
  });

  afterAll(async () => {
    await proxy.close();
    await deleteRedisKeys(url ?? "", prefix);
  });

  it("refuses no call of clients at a quarter of their limit after a stall", async () => {
    const registry = new Registry();
    const config = configOf({
      REDIS_URL: `redis://127.0.0.1:${proxy.port}`,
      RATE_LIMIT_KEY_PREFIX: prefix,
      RATE_LIMITS: "default=20/400ms",
      RATE_LIMIT_REDIS_TIMEOUT_MS: "200",
    });
    const limits = createRateLimits(config, { log: silent, registry });
    const clients = [`sub:stall-${randomUUID()}`, `sub:stall-${randomUUID()}`];
    const fallbacks = () => counterValue(registry, "gateway_rate_limit_fallbacks_total");
    // One call per client every 80 ms: 5 per 400 ms, a quarter of the limit. Calls do not wait
    // for each other, as a gateway's requests do not.
    const paced = async (ticks: number) => {
      const decisions: Promise<RateDecision>[] = [];
      for (let tick = 0; tick < ticks; tick++) {
        for (const client of clients) decisions.push(limits.take(client, getMe));
        await delay(80);
      }
      return Promise.all(decisions);
    };
    const refused = (decisions: RateDecision[]) => decisions.filter((d) => !d.allowed).length;
    try {
      expect(refused(await paced(5))).toBe(0);
      expect(await fallbacks()).toBe(0);
      // 2.4 s: every check waits 200 ms, then this replica decides alone, while Redis gets 30
      // checks per client that it will run once the stall ends.
      proxy.stall();
      const during = await paced(30);
      proxy.resume();
      const stalledFallbacks = await fallbacks();
      expect(stalledFallbacks).toBeGreaterThan(40);
      expect(refused(during)).toBe(0);
      // The next checks reach Redis behind the stalled ones, on the same connection.
      const after = await paced(10);
      expect(await fallbacks()).toBe(stalledFallbacks);
      expect(refused(after)).toBe(0);
    } finally {
      await limits.close();
    }
  });
});

describe("rate limits when Redis does not answer", () => {
  const env = { RATE_LIMITS: "default=3/1m", RATE_LIMIT_REDIS_TIMEOUT_MS: "300" };
  let hanging: Server;
  const sockets = new Set<Socket>();

  beforeAll(async () => {
    // Accepts connections and never replies, like a Redis that hangs.
    hanging = createServer((socket) => {
      sockets.add(socket);
      socket.on("close", () => sockets.delete(socket));
    });
    await new Promise<void>((resolve) => hanging.listen(0, "127.0.0.1", resolve));
  });

  afterAll(async () => {
    for (const socket of sockets) socket.destroy();
    await new Promise((resolve) => hanging.close(resolve));
  });

  const port = () => (hanging.address() as { port: number }).port;

  it.each([
    ["unreachable (a closed port)", () => "redis://127.0.0.1:1"],
    ["hanging (never replies)", () => `redis://127.0.0.1:${port()}`],
  ])("falls back to this replica's memory when Redis is %s, quickly", async (_, redisUrl) => {
    const warnings: string[] = [];
    const log = pino({ level: "warn" }, { write: (line: string) => void warnings.push(line) });
    const registry = new Registry();
    const config = configOf({ ...env, REDIS_URL: redisUrl() });
    const limits = createRateLimits(config, { log, registry });
    const started = performance.now();
    const decisions = await within(takeMany(limits, "sub:user-1", getMe, 5), 5_000, "takes");
    // Each check waits at most the 300 ms timeout; a closed port fails at once.
    expect(performance.now() - started).toBeLessThan(2_500);
    expect(decisions.map((d) => d.allowed)).toEqual([true, true, true, false, false]);
    expect(await counterValue(registry, "gateway_rate_limit_fallbacks_total")).toBe(5);
    expect(warnings.some((line) => line.includes("this replica limits on its own"))).toBe(true);
    await within(limits.close(), 1_000, "close");
    await expect(limits.take("sub:user-1", getMe)).rejects.toThrow(/closed/);
  });
});
