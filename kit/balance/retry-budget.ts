/** How many retries an upstream may take. */
export interface RetryBudgetPolicy {
  /** Retries allowed as a share of the calls in the window (0.2: one retry per five calls). */
  readonly ratio: number;
  /** Retries allowed in every window whatever the traffic, so a quiet upstream can retry. */
  readonly minRetries: number;
  /** The length of the window. */
  readonly windowMs: number;
}

/** The budget of every upstream unless configured otherwise. */
export const defaultRetryBudget: RetryBudgetPolicy = {
  ratio: 0.2,
  minRetries: 10,
  windowMs: 10_000,
};

/** Counts calls and retries over a sliding window and says whether one more retry fits. */
export interface RetryBudget {
  /** Records a first attempt. */
  recordCall(): void;
  /** Takes one retry from the budget; false (and nothing taken) when it is spent. */
  tryRetry(): boolean;
}

// The window slides in this many steps.
const buckets = 10;

/**
 * Creates a retry budget: retries stay under `ratio` of the calls of the last `windowMs`, plus
 * `minRetries`, so that retries can never multiply the load of an upstream that is failing.
 */
export function createRetryBudget(
  policy: RetryBudgetPolicy = defaultRetryBudget,
  now: () => number = Date.now,
): RetryBudget {
  const step = policy.windowMs / buckets;
  const calls = new Uint32Array(buckets);
  const retries = new Uint32Array(buckets);
  let current = Math.floor(now() / step);

  // Moves the window to now, emptying the buckets that fell out of it.
  function advance(): number {
    const index = Math.floor(now() / step);
    for (let i = current + 1; i <= Math.min(index, current + buckets); i++) {
      calls[i % buckets] = 0;
      retries[i % buckets] = 0;
    }
    current = Math.max(current, index);
    return current % buckets;
  }

  const sum = (values: Uint32Array) => values.reduce((a, b) => a + b, 0);

  return {
    recordCall() {
      const slot = advance();
      calls[slot] = (calls[slot] ?? 0) + 1;
    },
    tryRetry() {
      const slot = advance();
      if (sum(retries) >= policy.minRetries + policy.ratio * sum(calls)) return false;
      retries[slot] = (retries[slot] ?? 0) + 1;
      return true;
    },
  };
}
