import { ConnectError } from "@connectrpc/connect";

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

// Failures of calls the instance refused before running them, as a draining server refuses
// them: an HTTP/2 stream reset with REFUSED_STREAM, which says the request was not processed (RFC
// 9113 §8.7; marked on the stream's own error, which the clients keep as a cause), or an error
// carrying the `protomesh-refused` header, protomesh's answer to Connect and gRPC-Web callers.
const refused = new WeakSet<Error>();

/** The response header with which a protomesh server says that it refused a call unrun. */
export const refusedHeader = "protomesh-refused";

/** Marks the HTTP/2 stream error of a stream the peer reset with REFUSED_STREAM. */
export function markRefused(err: Error): void {
  refused.add(err);
}

/** True for a failure the instance refused unrun (see above). */
export function wasRefused(err: unknown): boolean {
  if (err instanceof ConnectError && err.metadata.has(refusedHeader)) return true;
  const seen = new Set<unknown>();
  for (let e = err; e instanceof Error && !seen.has(e); e = e.cause) {
    if (refused.has(e)) return true;
    seen.add(e);
  }
  return false;
}

/** What the retry rule needs to know of a call besides its failure. */
export interface RetryableCall {
  /** True for a method without side effects or an idempotent one (see kit/call-policy.ts). */
  readonly idempotent: boolean;
  /** The caller's signal: a call it cancelled never goes again. */
  readonly signal?: AbortSignal;
}

/**
 * True when a failed call may go again on another instance: its caller did not cancel it, and
 * either the instance refused it unrun (any method), or it got no response headers and
 * repeating it is safe. The retry budget and the deadline still have the last word
 * (kit/balance/resilient.ts).
 */
export function mayRetry(err: unknown, call: RetryableCall): boolean {
  if (call.signal?.aborted === true) return false;
  return wasRefused(err) || (call.idempotent && wasUnanswered(err));
}
