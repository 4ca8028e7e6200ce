import type { DescMethod } from "@bufbuild/protobuf";
import { MethodOptions_IdempotencyLevel as Idempotency } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import CircuitBreaker from "opossum";
import { z } from "zod";
import {
  type Balancer,
  createBalancer,
  defaultEjectionPolicy,
  type EjectionPolicy,
  type Lease,
} from "../kit/balance/balancer.ts";
import {
  createRetryBudget,
  defaultRetryBudget,
  type RetryBudget,
  type RetryBudgetPolicy,
} from "../kit/balance/retry-budget.ts";
import { methodPath } from "../kit/call-policy.ts";
import { millisSchema } from "../kit/config.ts";
import {
  type CallOptions,
  createUpstream,
  type StreamCall,
  type UnaryResult,
  type Upstream,
  type UpstreamOptions,
  wasUnanswered,
} from "./upstream.ts";

/** When the breaker of an upstream service opens and how it recovers. */
export interface BreakerPolicy {
  /** The share of failed calls (0–100) over the window that opens the breaker. */
  readonly errorThresholdPercentage: number;
  /** The fewest calls in the window before the breaker may open. */
  readonly volumeThreshold: number;
  /** The rolling window of the error rate. */
  readonly windowMs: number;
  /** How long the breaker stays open before letting one call through (half-open). */
  readonly resetTimeoutMs: number;
}

/** The breaker of every upstream service unless configured otherwise. */
export const defaultBreakerPolicy: BreakerPolicy = {
  errorThresholdPercentage: 50,
  volumeThreshold: 20,
  windowMs: 10_000,
  resetTimeoutMs: 5_000,
};

/** What the service upstreams report, for metrics. */
export interface ServiceUpstreamEvents {
  onBreakerState?(service: string, state: "closed" | "open" | "half-open"): void;
  onEject?(service: string, address: string, ms: number): void;
  onRetry?(service: string): void;
  onBudgetExhausted?(service: string): void;
}

/** The resilience policy of every upstream service, from the gateway's configuration. */
export interface ResiliencePolicy {
  readonly breaker: BreakerPolicy;
  readonly ejection: EjectionPolicy;
  readonly retryBudget: RetryBudgetPolicy;
  /** The first retry's backoff; each further retry doubles it, with full jitter. */
  readonly retryBaseMs: number;
  /** The longest backoff before a retry. */
  readonly retryMaxMs: number;
}

const count = (fallback: number) => z.coerce.number().int().positive().default(fallback);
const percent = (fallback: number) => z.coerce.number().int().min(1).max(100).default(fallback);

/** The settings of the resilience policy, with their defaults (see the README's table). */
export const resilienceConfigShape = {
  UPSTREAM_BREAKER_ERROR_PERCENT: percent(defaultBreakerPolicy.errorThresholdPercentage),
  UPSTREAM_BREAKER_MIN_CALLS: count(defaultBreakerPolicy.volumeThreshold),
  UPSTREAM_BREAKER_WINDOW_MS: millisSchema.default(defaultBreakerPolicy.windowMs),
  UPSTREAM_BREAKER_RESET_MS: millisSchema.default(defaultBreakerPolicy.resetTimeoutMs),
  UPSTREAM_EJECT_AFTER_FAILURES: count(defaultEjectionPolicy.consecutiveFailures),
  UPSTREAM_EJECT_BASE_MS: millisSchema.default(defaultEjectionPolicy.baseEjectionMs),
  UPSTREAM_EJECT_MAX_MS: millisSchema.default(defaultEjectionPolicy.maxEjectionMs),
  UPSTREAM_EJECT_MAX_PERCENT: percent(defaultEjectionPolicy.maxEjectedShare * 100),
  UPSTREAM_RETRY_BUDGET_PERCENT: percent(defaultRetryBudget.ratio * 100),
  UPSTREAM_RETRY_MIN_PER_WINDOW: count(defaultRetryBudget.minRetries),
  UPSTREAM_RETRY_WINDOW_MS: millisSchema.default(defaultRetryBudget.windowMs),
  UPSTREAM_RETRY_BACKOFF_MS: millisSchema.default(25),
  UPSTREAM_RETRY_BACKOFF_MAX_MS: millisSchema.default(1_000),
};

/** The resilience policy a configuration describes. */
export function resiliencePolicyOf(
  config: Readonly<z.infer<z.ZodObject<typeof resilienceConfigShape>>>,
): ResiliencePolicy {
  return {
    breaker: {
      errorThresholdPercentage: config.UPSTREAM_BREAKER_ERROR_PERCENT,
      volumeThreshold: config.UPSTREAM_BREAKER_MIN_CALLS,
      windowMs: config.UPSTREAM_BREAKER_WINDOW_MS,
      resetTimeoutMs: config.UPSTREAM_BREAKER_RESET_MS,
    },
    ejection: {
      consecutiveFailures: config.UPSTREAM_EJECT_AFTER_FAILURES,
      baseEjectionMs: config.UPSTREAM_EJECT_BASE_MS,
      maxEjectionMs: config.UPSTREAM_EJECT_MAX_MS,
      maxEjectedShare: config.UPSTREAM_EJECT_MAX_PERCENT / 100,
    },
    retryBudget: {
      ratio: config.UPSTREAM_RETRY_BUDGET_PERCENT / 100,
      minRetries: config.UPSTREAM_RETRY_MIN_PER_WINDOW,
      windowMs: config.UPSTREAM_RETRY_WINDOW_MS,
    },
    retryBaseMs: config.UPSTREAM_RETRY_BACKOFF_MS,
    retryMaxMs: config.UPSTREAM_RETRY_BACKOFF_MAX_MS,
  };
}

/** Options of createServiceUpstream. */
export interface ServiceUpstreamOptions extends UpstreamOptions {
  readonly policy: ResiliencePolicy;
  readonly events?: ServiceUpstreamEvents;
}

/**
 * All instances of one upstream service: calls go to the less busy of two healthy instances,
 * through one circuit breaker for the service, and idempotent unary calls that got no answer
 * are retried on another instance within the service's retry budget and the call's deadline.
 */
export interface ServiceUpstream {
  /** The service's full name, "protomesh.user.v1.UserService". */
  readonly service: string;
  /** Replaces the instances' base URLs (from the registry), keeping the connections of those that stay. */
  update(urls: readonly string[]): void;
  /** Calls a unary method: balanced, broken, retried when safe. */
  unary(method: DescMethod, body: Uint8Array, options: CallOptions): Promise<UnaryResult>;
  /** Opens a streaming call on one instance; fails fast while the breaker is open. */
  stream(method: DescMethod, options: CallOptions): StreamCall;
  /**
   * Takes an instance for a call the caller makes itself (the native pass-through), once the
   * breaker lets it; the caller reports how it ended. Throws Unavailable when no call can go.
   */
  acquire(): Promise<{ upstream: Upstream; done(failed: boolean): void }>;
  close(): void;
}

// Codes that say the service (or the way to it) failed, not the request: they count against
// the breaker and the instance. Client errors never do.
const serverFailures = new Set([
  Code.Unavailable,
  Code.DeadlineExceeded,
  Code.Internal,
  Code.Unknown,
]);

/** True when a call's failure is the service's, not the caller's. */
export function isServerFailure(err: unknown): boolean {
  return serverFailures.has(ConnectError.from(err).code);
}

function isIdempotent(method: DescMethod): boolean {
  return (
    method.idempotency === Idempotency.NO_SIDE_EFFECTS ||
    method.idempotency === Idempotency.IDEMPOTENT
  );
}

/** Creates the upstream of one service over its instances' base URLs. */
export function createServiceUpstream(
  service: string,
  urls: readonly string[],
  options: ServiceUpstreamOptions,
): ServiceUpstream {
  const { log, events } = options;
  const { breaker: policy, retryBaseMs, retryMaxMs } = options.policy;
  const instances = new Map<string, Upstream>();
  const balancer: Balancer<Upstream> = createBalancer({
    ejection: options.policy.ejection,
    events: {
      onEject: (upstream, ms) => {
        log.warn({ service, upstream: upstream.baseUrl, ms }, "instance ejected");
        events?.onEject?.(service, upstream.baseUrl, ms);
      },
    },
  });
  const budget: RetryBudget = createRetryBudget(options.policy.retryBudget);
  const breaker = new CircuitBreaker(<T>(call: () => Promise<T>) => call(), {
    timeout: false,
    errorThresholdPercentage: policy.errorThresholdPercentage,
    volumeThreshold: policy.volumeThreshold,
    rollingCountTimeout: policy.windowMs,
    rollingCountBuckets: 10,
    resetTimeout: policy.resetTimeoutMs,
    // A client error is a working service: it counts as a success, never as a failure.
    errorFilter: (err: unknown) => !isServerFailure(err),
  });
  const report = (state: "closed" | "open" | "half-open") => () => {
    log.warn({ service, breaker: state }, "circuit breaker state");
    events?.onBreakerState?.(service, state);
  };
  breaker.on("open", report("open"));
  breaker.on("halfOpen", report("half-open"));
  breaker.on("close", report("closed"));

  function update(next: readonly string[]): void {
    for (const [url, upstream] of instances) {
      if (!next.includes(url)) {
        upstream.close();
        instances.delete(url);
      }
    }
    for (const url of next) {
      if (!instances.has(url)) instances.set(url, createUpstream(url, options));
    }
    balancer.update([...instances.values()]);
  }
  update(urls);

  function lease(avoid?: ReadonlySet<Upstream>): Lease<Upstream> {
    const picked = balancer.pick(avoid);
    if (picked === undefined) {
      throw new ConnectError(`no instance of ${service} is available`, Code.Unavailable);
    }
    return picked;
  }

  /** Runs a call through the breaker; an open breaker fails it fast with Unavailable. */
  async function guarded<T>(call: () => Promise<T>): Promise<T> {
    try {
      return (await breaker.fire(call)) as T;
    } catch (err) {
      if ((err as { code?: string }).code === "EOPENBREAKER") {
        throw new ConnectError(
          `${service} is failing: its circuit breaker is open`,
          Code.Unavailable,
        );
      }
      throw err;
    }
  }

  const outcomeOf = (err: unknown) => (isServerFailure(err) ? "failure" : "neutral");

  async function unary(
    method: DescMethod,
    body: Uint8Array,
    call: CallOptions,
  ): Promise<UnaryResult> {
    const path = methodPath(method);
    const deadline = performance.now() + call.timeoutMs;
    const tried = new Set<Upstream>();
    budget.recordCall();
    for (let attempt = 0; ; attempt++) {
      const held = lease(tried);
      tried.add(held.endpoint);
      const timeoutMs = Math.max(1, deadline - performance.now());
      try {
        const result = await guarded(() => held.endpoint.unary(path, body, { ...call, timeoutMs }));
        held.release("success");
        return result;
      } catch (err) {
        held.release(outcomeOf(err));
        // Only a call no instance answered may go again, and only if repeating it is safe.
        if (!isIdempotent(method) || !wasUnanswered(err) || call.signal?.aborted) throw err;
        const backoff = Math.random() * Math.min(retryMaxMs, retryBaseMs * 2 ** attempt);
        if (performance.now() + backoff >= deadline) throw err;
        if (!budget.tryRetry()) {
          events?.onBudgetExhausted?.(service);
          throw err;
        }
        events?.onRetry?.(service);
        await new Promise((resolve) => setTimeout(resolve, backoff));
      }
    }
  }

  function stream(method: DescMethod, call: CallOptions): StreamCall {
    const held = lease();
    const opened = held.endpoint.stream(methodPath(method), call);
    // The breaker and the instance judge a stream by whether it got its response headers.
    guarded(() => opened.headers).then(
      () => held.release("success"),
      (err: unknown) => {
        held.release(outcomeOf(err));
        opened.cancel(ConnectError.from(err));
      },
    );
    return opened;
  }

  async function acquire(): Promise<{ upstream: Upstream; done(failed: boolean): void }> {
    if (breaker.opened) {
      throw new ConnectError(
        `${service} is failing: its circuit breaker is open`,
        Code.Unavailable,
      );
    }
    const held = lease();
    let settle: (failed: boolean) => void = () => {};
    const outcome = new Promise<void>((resolve, reject) => {
      settle = (failed) =>
        failed ? reject(new ConnectError("upstream call failed", Code.Unavailable)) : resolve();
    });
    guarded(() => outcome).catch(() => {});
    return {
      upstream: held.endpoint,
      done(failed) {
        held.release(failed ? "failure" : "success");
        settle(failed);
      },
    };
  }

  return {
    service,
    update,
    unary,
    stream,
    acquire,
    close() {
      breaker.shutdown();
      for (const upstream of instances.values()) upstream.close();
    },
  };
}
