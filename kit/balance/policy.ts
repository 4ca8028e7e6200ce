import { z } from "zod";
import { millisSchema } from "../config.ts";
import { defaultEjectionPolicy, type EjectionPolicy } from "./balancer.ts";
import { defaultRetryBudget, type RetryBudgetPolicy } from "./retry-budget.ts";
import { defaultKeepalive, type KeepalivePolicy } from "./session-keeper.ts";

/** When the breaker of a service opens and how it recovers. */
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

/** The breaker of every service unless configured otherwise. */
export const defaultBreakerPolicy: BreakerPolicy = {
  errorThresholdPercentage: 50,
  volumeThreshold: 20,
  windowMs: 10_000,
  resetTimeoutMs: 5_000,
};

/** How calls to a service are balanced, broken off, ejected and retried, and its sessions kept. */
export interface ResiliencePolicy {
  readonly breaker: BreakerPolicy;
  readonly ejection: EjectionPolicy;
  readonly retryBudget: RetryBudgetPolicy;
  /** How the HTTP/2 session to each instance notices a dead peer and lets an unused one go. */
  readonly keepalive: KeepalivePolicy;
  /** The most attempts one call makes, the first included. */
  readonly maxAttempts: number;
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
  UPSTREAM_RETRY_MAX_ATTEMPTS: count(3),
  UPSTREAM_RETRY_BACKOFF_MS: millisSchema.default(25),
  UPSTREAM_RETRY_BACKOFF_MAX_MS: millisSchema.default(1_000),
  UPSTREAM_PING_INTERVAL_MS: millisSchema.default(defaultKeepalive.pingIntervalMs),
  UPSTREAM_PING_TIMEOUT_MS: millisSchema.default(defaultKeepalive.pingTimeoutMs),
  UPSTREAM_IDLE_TIMEOUT_MS: millisSchema.default(defaultKeepalive.idleTimeoutMs),
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
    keepalive: {
      pingIntervalMs: config.UPSTREAM_PING_INTERVAL_MS,
      pingTimeoutMs: config.UPSTREAM_PING_TIMEOUT_MS,
      idleTimeoutMs: config.UPSTREAM_IDLE_TIMEOUT_MS,
    },
    maxAttempts: config.UPSTREAM_RETRY_MAX_ATTEMPTS,
    retryBaseMs: config.UPSTREAM_RETRY_BACKOFF_MS,
    retryMaxMs: config.UPSTREAM_RETRY_BACKOFF_MAX_MS,
  };
}
