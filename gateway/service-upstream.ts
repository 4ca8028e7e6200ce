import type { DescMethod } from "@bufbuild/protobuf";
import { MethodOptions_IdempotencyLevel as Idempotency } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import CircuitBreaker from "opossum";
import { type Balancer, createBalancer, type Lease } from "../kit/balance/balancer.ts";
import { createRetryBudget, type RetryBudget } from "../kit/balance/retry-budget.ts";
import { methodPath } from "../kit/call-policy.ts";
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

/** Options of createServiceUpstream. */
export interface ServiceUpstreamOptions extends UpstreamOptions {
  readonly breaker?: BreakerPolicy;
  readonly events?: ServiceUpstreamEvents;
  /** The first retry's backoff; each further retry doubles it, with full jitter. */
  readonly retryBaseMs?: number;
  /** The longest backoff before a retry. */
  readonly retryMaxMs?: number;
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
  const policy = options.breaker ?? defaultBreakerPolicy;
  const retryBaseMs = options.retryBaseMs ?? 25;
  const retryMaxMs = options.retryMaxMs ?? 1_000;
  const instances = new Map<string, Upstream>();
  const balancer: Balancer<Upstream> = createBalancer({
    events: {
      onEject: (upstream, ms) => {
        log.warn({ service, upstream: upstream.baseUrl, ms }, "instance ejected");
        events?.onEject?.(service, upstream.baseUrl, ms);
      },
    },
  });
  const budget: RetryBudget = createRetryBudget();
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
