// Which failed calls may go again on another instance: one rule for the gateway's upstreams and
// the services' balanced transport, whatever error their HTTP/2 client reported.

// Failures of calls that got no response headers, though the caller neither cancelled them nor
// ran out of time: the instance, or the way to it, went away before it answered.
const unanswered = new WeakSet<Error>();

/** Marks the failure of a call that got no response headers and that the caller did not end. */
export function markUnanswered<E extends Error>(err: E): E {
  unanswered.add(err);
  return err;
}

/** True for a failure marked with markUnanswered. */
export function wasUnanswered(err: unknown): boolean {
  return err instanceof Error && unanswered.has(err);
}

/** What the retry rule needs to know of a call besides its failure. */
export interface RetryableCall {
  /** True for a method without side effects or an idempotent one (see kit/call-policy.ts). */
  readonly idempotent: boolean;
  /** The caller's signal: a call it cancelled never goes again. */
  readonly signal?: AbortSignal;
}

/**
 * True when a failed call may go again on another instance: it got no response headers, its
 * caller did not cancel it, and repeating it is safe. The retry budget and the deadline still
 * have the last word (kit/balance/resilient.ts).
 */
export function mayRetry(err: unknown, call: RetryableCall): boolean {
  return call.idempotent && wasUnanswered(err) && call.signal?.aborted !== true;
}
