import { Code, ConnectError } from "@connectrpc/connect";
import CircuitBreaker from "opossum";
import type { Log } from "../log.ts";
import { type Balancer, createBalancer, type Lease } from "./balancer.ts";
import type { ResiliencePolicy } from "./policy.ts";
import { createRetryBudget } from "./retry-budget.ts";
import { mayRetry, type RetryableCall, wasRefused, wasUnanswered } from "./retryable.ts";

/** What the resilience of a service reports, for metrics. */
export interface ResilienceEvents {
  onBreakerState?(service: string, state: "closed" | "open" | "half-open"): void;
  onEject?(service: string, endpoint: string, ms: number): void;
  onRetry?(service: string): void;
  onBudgetExhausted?(service: string): void;
  /** An instance's health Watch reported a change: it serves, or it does not. */
  onServing?(service: string, endpoint: string, serving: boolean): void;
}

/** Options of createResilient. */
export interface ResilientOptions<E> {
  readonly policy: ResiliencePolicy;
  readonly log: Log;
  readonly events?: ResilienceEvents;
  /** How an endpoint is named in logs and metrics. */
  readonly nameOf: (endpoint: E) => string;
}

/** One call's hold on an endpoint, for calls made outside `call` (streams, pass-through). */
export interface Held<E> {
  readonly endpoint: E;
  /** Says how the call went, once: a server-side failure counts against endpoint and breaker. */
  done(failure: unknown): void;
}

/**
 * The endpoints of one service (instances, connections, transports) and how calls use them:
 * balanced, through one circuit breaker, ejecting endpoints that keep failing, and retrying
 * idempotent calls that no endpoint answered within a budget and the deadline. The gateway's
 * upstreams and the services' clients share it.
 */
export interface Resilient<E> {
  /** Replaces the endpoints, keeping the state of those that stay. */
  update(endpoints: readonly E[]): void;
  /** Says whether an endpoint serves, from its health: one that does not gets no calls. */
  setServing(endpoint: E, serving: boolean): void;
  /**
   * Runs a call: `attempt` gets an endpoint and the time left; failures go again on another
   * endpoint when the retry rule allows (kit/balance/retryable.ts). Fails fast with Unavailable
   * while the breaker is open or when no endpoint is left.
   */
  call<T>(
    options: RetryableCall & { readonly timeoutMs: number },
    attempt: (endpoint: E, timeoutMs: number) => Promise<T>,
  ): Promise<T>;
  /** Takes an endpoint for a call the caller makes itself; throws Unavailable like `call`. */
  acquire(): Held<E>;
  close(): void;
}

// Codes that say the service (or the way to it) failed, not the request: they count against
// the breaker and the endpoint, as does a call the endpoint dropped unanswered whatever its
// code. Client errors never do, nor does a call an instance refused unrun (it is draining).
const serverFailures = new Set([
  Code.Unavailable,
  Code.DeadlineExceeded,
  Code.Internal,
  Code.Unknown,
]);

/** True when a call's failure is the service's, not the caller's. */
export function isServerFailure(err: unknown): boolean {
  if (wasRefused(err)) return false;
  return wasUnanswered(err) || serverFailures.has(ConnectError.from(err).code);
}

/** Creates the resilience of one service's endpoints. */
export function createResilient<E>(service: string, options: ResilientOptions<E>): Resilient<E> {
  const { policy, log, events, nameOf } = options;
  const balancer: Balancer<E> = createBalancer<E>({
    ejection: policy.ejection,
    events: {
      onEject: (endpoint, ms) => {
        log.warn({ service, endpoint: nameOf(endpoint), ms }, "instance ejected");
        events?.onEject?.(service, nameOf(endpoint), ms);
      },
    },
  });
  const budget = createRetryBudget(policy.retryBudget);
  const breaker = new CircuitBreaker(<T>(run: () => Promise<T>) => run(), {
    timeout: false,
    errorThresholdPercentage: policy.breaker.errorThresholdPercentage,
    volumeThreshold: policy.breaker.volumeThreshold,
    rollingCountTimeout: policy.breaker.windowMs,
    rollingCountBuckets: 10,
    resetTimeout: policy.breaker.resetTimeoutMs,
    // Only the error rate is read: no latency percentiles (a sort of the window's latencies on
    // every failure) and no snapshot events on the hot path.
    rollingPercentilesEnabled: false,
    enableSnapshots: false,
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

  const open = () =>
    new ConnectError(`${service} is failing: its circuit breaker is open`, Code.Unavailable);

  function lease(avoid?: ReadonlySet<E>): Lease<E> {
    const picked = balancer.pick(avoid);
    if (picked === undefined) {
      throw new ConnectError(`no instance of ${service} is available`, Code.Unavailable);
    }
    return picked;
  }

  /** Runs a call through the breaker; an open breaker fails it fast with Unavailable. */
  async function guarded<T>(run: () => Promise<T>): Promise<T> {
    try {
      return (await breaker.fire(run)) as T;
    } catch (err) {
      if ((err as { code?: string }).code === "EOPENBREAKER") throw open();
      throw err;
    }
  }

  const outcomeOf = (err: unknown) => (isServerFailure(err) ? "failure" : "neutral");

  return {
    update: (endpoints) => balancer.update(endpoints),
    setServing(endpoint, serving) {
      if (!balancer.setServing(endpoint, serving)) return;
      log.info({ service, endpoint: nameOf(endpoint), serving }, "instance health changed");
      events?.onServing?.(service, nameOf(endpoint), serving);
    },

    async call(call, attempt) {
      const deadline = performance.now() + call.timeoutMs;
      const tried = new Set<E>();
      budget.recordCall();
      for (let n = 0; ; n++) {
        const held = lease(tried);
        tried.add(held.endpoint);
        try {
          const timeoutMs = Math.max(1, Math.ceil(deadline - performance.now()));
          const result = await guarded(() => attempt(held.endpoint, timeoutMs));
          held.release("success");
          return result;
        } catch (err) {
          held.release(outcomeOf(err));
          if (!mayRetry(err, call)) throw err;
          if (n + 1 >= policy.maxAttempts) throw err;
          const backoff = Math.random() * Math.min(policy.retryMaxMs, policy.retryBaseMs * 2 ** n);
          if (performance.now() + backoff >= deadline) throw err;
          // A refusal cost the instance nothing: only the other retries draw on the budget.
          if (!wasRefused(err) && !budget.tryRetry()) {
            events?.onBudgetExhausted?.(service);
            throw err;
          }
          events?.onRetry?.(service);
          await new Promise((resolve) => setTimeout(resolve, backoff));
        }
      }
    },

    acquire() {
      if (breaker.opened) throw open();
      const held = lease();
      let settle: (failure: unknown) => void = () => {};
      // The breaker counts the call when the caller says how it went.
      guarded(
        () =>
          new Promise<void>((resolve, reject) => {
            settle = (failure) => (failure === undefined ? resolve() : reject(failure));
          }),
      ).catch(() => {});
      let reported = false;
      return {
        endpoint: held.endpoint,
        done(failure) {
          if (reported) return;
          reported = true;
          held.release(failure === undefined ? "success" : outcomeOf(failure));
          settle(failure);
        },
      };
    },

    close: () => breaker.shutdown(),
  };
}
