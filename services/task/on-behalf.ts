import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";

// What identifies the caller and their trace to the services called for them.
const forwardedHeaders = ["authorization", "traceparent", "tracestate"];
// The caller's token and deadline keep their codes; whatever else goes wrong over there is
// the other service being unavailable to us.
const passedThrough = [Code.Unauthenticated, Code.DeadlineExceeded, Code.Canceled];

/** The options of a call made to another service on a caller's behalf. */
export interface OnBehalfOptions {
  headers: Headers;
  signal: AbortSignal;
  timeoutMs?: number;
}

/**
 * The options of a call made for the caller of `ctx`: their token and trace go with it, their
 * cancellation cancels it, and it gets what remains of their deadline.
 */
export function onBehalfOf(ctx: HandlerContext): OnBehalfOptions {
  const headers = new Headers();
  for (const name of forwardedHeaders) {
    const value = ctx.requestHeader.get(name);
    if (value !== null) headers.set(name, value);
  }
  const timeoutMs = ctx.timeoutMs();
  return { headers, signal: ctx.signal, ...(timeoutMs === undefined ? {} : { timeoutMs }) };
}

/**
 * The answer to a caller whose call to another service failed (other than with an answer the
 * caller's request is refused for): Unavailable saying `what` could not be done, or the
 * caller's own Unauthenticated, DeadlineExceeded or Canceled. The failure is kept as the cause.
 */
export function failedOnBehalf(what: string, err: unknown): ConnectError {
  const error = ConnectError.from(err);
  return new ConnectError(
    `${what}: ${error.rawMessage}`,
    passedThrough.includes(error.code) ? error.code : Code.Unavailable,
    undefined,
    undefined,
    err,
  );
}
