import { createHash } from "node:crypto";
import { isIPv4, isIPv6 } from "node:net";
import { type DescMethod, getOption, hasOption, type Message } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { Counter, type Registry } from "prom-client";
import { z } from "zod";
import { call } from "../../gen/protomesh/options/v1/options_pb.ts";
import { millisSchema } from "../../kit/config.ts";
import type { Log } from "../../kit/log.ts";
import type { GatewayRequest } from "../exchange.ts";
import {
  type BucketRule,
  type BucketStore,
  type BucketTake,
  createMemoryBuckets,
  createRedisBuckets,
  isExactRule,
} from "./rate-limit-bucket.ts";

/** One class's limit: a token bucket of `points` tokens, refilled at `points` per `durationMs`. */
export type RateRule = BucketRule;

/** A class's limit, or "off" for no limit at all. */
export type RateSetting = RateRule | "off";

/**
 * The limits of every rate-limit class used in the protos, per client. RATE_LIMITS overrides
 * them class by class; a class it does not name keeps its limit here.
 */
export const defaultRateLimits = "default=100/1s,auth=10/1m,upload=10/1m";

/** Per account (the email of a login or registration), across all its clients. */
export const defaultAccountRateLimit = "5/1m";

const durationUnitMs = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 } as const;
const ruleSyntax = /^(\d+)\/(\d*)(ms|s|m|h)$/;
const className = /^[A-Za-z0-9_.-]+$/;

/** Parses "100/1s", "5/m", "10/500ms" or "off"; throws a message saying what is expected. */
function parseSetting(text: string): RateSetting {
  if (text === "off") return "off";
  const match = ruleSyntax.exec(text);
  const points = Number(match?.[1]);
  const count = match?.[2] ? Number(match[2]) : 1;
  const unit = match?.[3] as keyof typeof durationUnitMs | undefined;
  if (unit === undefined || !Number.isSafeInteger(points) || points < 1 || count < 1) {
    throw new Error(`"${text}" is not <points>/<duration> (such as 100/1s, 5/m, 20/500ms) or off`);
  }
  const rule = Object.freeze({ points, durationMs: count * durationUnitMs[unit] });
  if (!isExactRule(rule)) {
    throw new Error(`"${text}" is too large: points times milliseconds must stay below 4.5e12`);
  }
  return rule;
}

/** Parses "class=rule,class=rule" over `base`; throws naming the entry at fault. */
function parseLimits(text: string, base: Readonly<Record<string, RateSetting>> = {}) {
  const limits: Record<string, RateSetting> = { ...base };
  const named = new Set<string>();
  for (const entry of text.split(",")) {
    const trimmed = entry.trim();
    if (trimmed === "") continue;
    const [name = "", rule, ...rest] = trimmed.split("=").map((part) => part.trim());
    if (rule === undefined || rest.length > 0 || !className.test(name)) {
      throw new Error(`"${trimmed}" is not <class>=<points>/<duration>, such as auth=5/1m`);
    }
    if (named.has(name)) throw new Error(`class "${name}" is given twice`);
    named.add(name);
    limits[name] = parseSetting(rule);
  }
  return Object.freeze(limits);
}

const builtInLimits = parseLimits(defaultRateLimits);

/** A zod transform that runs `parse` and turns what it throws into an issue on the variable. */
function parsed<I, T>(parse: (text: I) => T) {
  return (text: I, ctx: z.RefinementCtx): T => {
    try {
      return parse(text);
    } catch (err) {
      ctx.addIssue({ code: "custom", message: (err as Error).message });
      return z.NEVER;
    }
  };
}

/**
 * The gateway's rate-limit settings, to spread into its configuration schema. Limits are token
 * buckets per client (JWT subject, else IP) and per class (the RPC's `rate_limit_class`).
 */
export const rateLimitConfigShape = {
  /** Set: all replicas share their buckets through this Redis. Unset: each keeps its own. */
  REDIS_URL: z.url({ protocol: /^rediss?$/ }).optional(),
  /** "class=points/duration,…", over defaultRateLimits; "class=off" lifts a class's limit. */
  RATE_LIMITS: z
    .string()
    .optional()
    .transform(parsed((text: string | undefined) => parseLimits(text ?? "", builtInLimits))),
  /** The per-account limit of "auth" RPCs that name an account (login, registration), or "off". */
  RATE_LIMIT_ACCOUNT: z.string().default(defaultAccountRateLimit).transform(parsed(parseSetting)),
  /**
   * How many proxies in front of the gateway append to X-Forwarded-For. 0: the client is the
   * socket's peer, and X-Forwarded-For (which any client can write) is ignored.
   */
  RATE_LIMIT_TRUSTED_PROXIES: z.coerce.number().int().min(0).max(16).default(0),
  /** Longest wait for Redis per check before this replica decides alone (in memory). */
  RATE_LIMIT_REDIS_TIMEOUT_MS: millisSchema.default(250),
  /** Prefix of the bucket keys in Redis; replicas enforce one limit when it is the same. */
  RATE_LIMIT_KEY_PREFIX: z.string().min(1).default("protomesh:rate-limit:"),
};

/** The validated rate-limit settings. */
export type RateLimitConfig = Readonly<z.infer<z.ZodObject<typeof rateLimitConfigShape>>>;

const classes = new WeakMap<DescMethod, string>();

/** An RPC's rate-limit class: `(protomesh.options.v1.call).rate_limit_class`, or "default". */
export function rateLimitClassOf(method: DescMethod): string {
  let rateClass = classes.get(method);
  if (rateClass === undefined) {
    // Read once per method: an option is decoded from the descriptor at every read.
    rateClass = hasOption(method, call) ? getOption(method, call).rateLimitClass : "";
    rateClass ||= "default";
    classes.set(method, rateClass);
  }
  return rateClass;
}

/** The outcome of one rate-limit check, with what the response headers say about it. */
export interface RateDecision {
  readonly allowed: boolean;
  /** The rate-limit class of the RPC. */
  readonly class: string;
  /** Whose bucket decided: the client's (subject or IP) or the account's (login, registration). */
  readonly scope: "client" | "account";
  /** The bucket's size; Infinity when the class is not limited. */
  readonly limit: number;
  /** Whole tokens left after this check. */
  readonly remaining: number;
  /** Seconds until the bucket is full again (rounded up). */
  readonly resetSeconds: number;
  /** The time the bucket takes to refill from empty, in whole seconds (rounded up). */
  readonly windowSeconds: number;
  /** On rejection: seconds until one call will be admitted again (at least 1). */
  readonly retryAfterSeconds?: number;
}

/** Rate limiting at the gateway. */
export interface RateLimits {
  /** Takes a token from the bucket of `client` (see clientKeyOf) for the RPC's class. */
  take(client: string, method: DescMethod): Promise<RateDecision>;
  /**
   * Takes a token from the bucket of an account (the email of a login or registration, as sent:
   * it is trimmed and lower-cased here, as the user service does), shared by every client.
   */
  takeAccount(account: string, method: DescMethod): Promise<RateDecision>;
  /** Closes the Redis connection; checks fail afterwards. */
  close(): Promise<void>;
}

/** What createRateLimits needs besides its settings. */
export interface RateLimitsOptions {
  readonly log: Log;
  /** Where the rejection counter (`gateway_rate_limited_total`) is registered. */
  readonly registry: Registry;
  /** The in-memory buckets' clock in milliseconds (monotonic); tests pass a fake one. */
  readonly now?: () => number;
}

const fallbackLogEveryMs = 30_000;

/**
 * Creates the gateway's rate limits: in this process's memory, or shared through Redis when
 * REDIS_URL is set. A class missing from RATE_LIMITS gets the "default" class's limit (in a
 * bucket of its own) and a warning.
 *
 * A check Redis cannot answer within RATE_LIMIT_REDIS_TIMEOUT_MS (down, unreachable, slow) is
 * decided by this replica's in-memory buckets instead, with the same limits: while Redis is out,
 * each replica admits up to the whole limit on its own. It is logged (at most every 30 s) and
 * counted in `gateway_rate_limit_fallbacks_total`.
 */
export function createRateLimits(config: RateLimitConfig, options: RateLimitsOptions): RateLimits {
  const { log, registry } = options;
  const memory = createMemoryBuckets(options.now);
  const shared: BucketStore | undefined = config.REDIS_URL
    ? createRedisBuckets({
        url: config.REDIS_URL,
        timeoutMs: config.RATE_LIMIT_REDIS_TIMEOUT_MS,
        keyPrefix: config.RATE_LIMIT_KEY_PREFIX,
        log,
      })
    : undefined;
  log.info(
    { shared: shared !== undefined },
    shared ? "rate limits shared through Redis" : "rate limits kept in memory",
  );
  const rejections = new Counter({
    name: "gateway_rate_limited_total",
    help: "Calls rejected by a rate limit, by rate-limit class and scope (client or account).",
    labelNames: ["class", "scope"],
    registers: [registry],
  });
  const fallbacks = new Counter({
    name: "gateway_rate_limit_fallbacks_total",
    help: "Rate-limit checks this replica decided in memory because Redis did not answer.",
    registers: [registry],
  });
  const unconfigured = new Set<string>();
  let lastFallbackLog = Number.NEGATIVE_INFINITY;
  let closed = false;

  const settingOf = (rateClass: string): RateSetting => {
    const setting = config.RATE_LIMITS[rateClass];
    if (setting !== undefined) return setting;
    if (!unconfigured.has(rateClass)) {
      unconfigured.add(rateClass);
      log.warn(
        { class: rateClass },
        "rate-limit class not in RATE_LIMITS; using the default limit",
      );
    }
    return config.RATE_LIMITS.default ?? "off";
  };

  const takeFrom = async (key: string, rule: RateRule): Promise<BucketTake> => {
    if (shared === undefined) return memory.take(key, rule);
    try {
      return await shared.take(key, rule);
    } catch (err) {
      if (closed) throw err;
      fallbacks.inc();
      const now = Date.now();
      if (now - lastFallbackLog >= fallbackLogEveryMs) {
        lastFallbackLog = now;
        log.warn({ err }, "rate limits: Redis did not answer; this replica limits on its own");
      }
      return memory.take(key, rule);
    }
  };

  const decide = async (
    scope: RateDecision["scope"],
    rateClass: string,
    key: string,
    setting: RateSetting,
  ): Promise<RateDecision> => {
    if (closed) throw new Error("the rate limits are closed");
    if (setting === "off") {
      const unlimited = { limit: Infinity, remaining: Infinity, resetSeconds: 0, windowSeconds: 0 };
      return { allowed: true, class: rateClass, scope, ...unlimited };
    }
    const taken = await takeFrom(key, setting);
    const decision: RateDecision = {
      allowed: taken.allowed,
      class: rateClass,
      scope,
      limit: setting.points,
      remaining: taken.remaining,
      resetSeconds: Math.ceil(taken.fullInMs / 1000),
      windowSeconds: Math.ceil(setting.durationMs / 1000),
    };
    if (taken.allowed) return decision;
    rejections.inc({ class: rateClass, scope });
    return { ...decision, retryAfterSeconds: Math.max(1, Math.ceil(taken.retryInMs / 1000)) };
  };

  return {
    take(client, method) {
      const rateClass = rateLimitClassOf(method);
      return decide("client", rateClass, `client:${rateClass}:${client}`, settingOf(rateClass));
    },
    takeAccount(account, method) {
      // Hashed: the address comes from an unauthenticated body, so its length is the caller's
      // choice, and Redis keys are no place for personal data.
      const digest = createHash("sha256").update(account.trim().toLowerCase()).digest("hex");
      const key = `account:${digest.slice(0, 32)}`;
      return decide("account", rateLimitClassOf(method), key, config.RATE_LIMIT_ACCOUNT);
    },
    async close() {
      if (closed) return;
      closed = true;
      await Promise.all([shared?.close(), memory.close()]);
    },
  };
}

/**
 * The response headers of a decision, in the separate fields of the IETF draft
 * (draft-ietf-httpapi-ratelimit-headers-06): RateLimit-Limit, RateLimit-Remaining,
 * RateLimit-Reset (seconds until the bucket is full), RateLimit-Policy (`<limit>;w=<seconds to
 * refill from empty>`), and Retry-After on a rejection. None for an unlimited class.
 */
export function rateLimitHeaders(decision: RateDecision): Record<string, string> {
  if (!Number.isFinite(decision.limit)) return {};
  const headers: Record<string, string> = {
    "ratelimit-limit": String(decision.limit),
    "ratelimit-remaining": String(decision.remaining),
    "ratelimit-reset": String(decision.resetSeconds),
    "ratelimit-policy": `${decision.limit};w=${decision.windowSeconds}`,
  };
  if (decision.retryAfterSeconds !== undefined) {
    headers["retry-after"] = String(decision.retryAfterSeconds);
  }
  return headers;
}

/**
 * The error a rejected call gets: `resource_exhausted` (HTTP 429) carrying the decision's
 * headers as metadata, so REST responses and native (Connect, gRPC, gRPC-Web) ones both show them.
 */
export function rateLimitError(decision: RateDecision): ConnectError {
  const who = decision.scope === "account" ? "this account" : `${decision.class} calls`;
  const wait = decision.retryAfterSeconds ?? 1;
  return new ConnectError(
    `too many requests for ${who}: retry in ${wait} s`,
    Code.ResourceExhausted,
    rateLimitHeaders(decision),
  );
}

/**
 * Admits a call by a rate-limit decision: resolves with the response headers to send, or throws
 * the decision's rate-limit error (which carries them) when it refuses the call.
 */
export async function admit(decision: Promise<RateDecision>): Promise<Record<string, string>> {
  const taken = await decision;
  if (!taken.allowed) throw rateLimitError(taken);
  return rateLimitHeaders(taken);
}

/**
 * The email of a login or registration request, whose account has a rate limit of its own: the
 * `email` string field of the request message, if it has one and it is set.
 */
export function accountOf(method: DescMethod, message: Message): string | undefined {
  if (rateLimitClassOf(method) !== "auth") return undefined;
  const field = method.input.fields.find((f) => f.name === "email" && f.fieldKind === "scalar");
  if (field === undefined) return undefined;
  const value = (message as unknown as Record<string, unknown>)[field.localName];
  return typeof value === "string" && value !== "" ? value : undefined;
}

/**
 * The address a request comes from. With `trustedProxies` proxies in front of the gateway, each
 * appending to X-Forwarded-For, it is the entry the outermost of them appended (entries to its
 * left are the client's to write); otherwise, or when that entry is no IP address, the socket's.
 */
export function clientAddressOf(
  remoteAddress: string | undefined,
  forwardedFor: string | readonly string[] | undefined,
  trustedProxies: number,
): string | undefined {
  if (trustedProxies === 0 || forwardedFor === undefined) return remoteAddress;
  const entries = (typeof forwardedFor === "string" ? forwardedFor : forwardedFor.join(","))
    .split(",")
    .map((entry) => entry.trim())
    .filter((entry) => entry !== "");
  const entry = entries[Math.max(0, entries.length - trustedProxies)];
  if (entry === undefined) return remoteAddress;
  // Some proxies add the port: "203.0.113.7:4711", "[2001:db8::1]:4711".
  const address = /^\[(.*)\](?::\d+)?$/.exec(entry)?.[1] ?? entry.replace(/^([\d.]+):\d+$/, "$1");
  return isIPv4(address) || isIPv6(address) ? address : remoteAddress;
}

/**
 * The rate-limit key of a caller: "sub:<subject>" for a verified token's subject, otherwise
 * "ip:<address>", an IPv6 address cut to its /64 (one host's usual share) and an IPv4-mapped
 * IPv6 address unwrapped to IPv4.
 */
export function clientKeyOf(
  subject: string | undefined,
  remoteAddress: string | undefined,
): string {
  if (subject) return `sub:${subject}`;
  const address = remoteAddress ?? "";
  let key = addressKeys.get(address);
  if (key === undefined) {
    key = `ip:${normalizeAddress(address)}`;
    // Bounded: a flood of distinct addresses empties it instead of growing it.
    if (addressKeys.size >= maxAddressKeys) addressKeys.clear();
    addressKeys.set(address, key);
  }
  return key;
}

// The keys of recent client addresses: normalizing one takes an IPv6 parse per call.
const addressKeys = new Map<string, string>();
const maxAddressKeys = 4096;

function normalizeAddress(address: string): string {
  if (!address) return "unknown";
  const plain = address.replace(/%.*$/, "");
  if (!isIPv6(plain)) return plain;
  const groups = ipv6Groups(plain);
  if (groups.slice(0, 5).every((group) => group === 0) && groups[5] === 0xffff) {
    const [high = 0, low = 0] = groups.slice(6);
    return [high >> 8, high & 0xff, low >> 8, low & 0xff].join(".");
  }
  // The URL parser writes the prefix in its canonical, compressed form (RFC 5952).
  const prefix = `${groups
    .slice(0, 4)
    .map((group) => group.toString(16))
    .join(":")}::`;
  return `${new URL(`http://[${prefix}]/`).hostname.slice(1, -1)}/64`;
}

/** The eight 16-bit groups of a valid IPv6 address (with "::" and a dotted IPv4 tail expanded). */
function ipv6Groups(address: string): number[] {
  const text = address.replace(/(\d+)\.(\d+)\.(\d+)\.(\d+)$/, (_, a, b, c, d) => {
    const [high, low] = [Number(a) * 256 + Number(b), Number(c) * 256 + Number(d)];
    return `${high.toString(16)}:${low.toString(16)}`;
  });
  const [head = "", tail] = text.split("::");
  const left = head === "" ? [] : head.split(":");
  const right = tail === undefined || tail === "" ? [] : tail.split(":");
  const zeros = tail === undefined ? [] : Array<string>(8 - left.length - right.length).fill("0");
  return [...left, ...zeros, ...right].map((group) => Number.parseInt(group, 16));
}

/** The client address of a request, for its rate limit (see clientAddressOf). */
export function addressOf(req: GatewayRequest, trustedProxies: number): string | undefined {
  return clientAddressOf(req.socket?.remoteAddress, req.headers["x-forwarded-for"], trustedProxies);
}
