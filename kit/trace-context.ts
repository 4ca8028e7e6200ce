import { randomBytes } from "node:crypto";
import type { HandlerContext } from "@connectrpc/connect";

const traceparentPattern = /^[\da-f]{2}-([\da-f]{32})-[\da-f]{16}-[\da-f]{2}$/;

/**
 * The trace id of a request from its W3C `traceparent` header (Trace Context §3.2),
 * or a fresh one so that every log line of a call can still be correlated.
 */
export function traceIdOf(headers: Headers): string {
  const match = traceparentPattern.exec(headers.get("traceparent") ?? "");
  // An all-zero trace id is invalid per §3.2.2.3.
  if (match?.[1] && !/^0+$/.test(match[1])) return match[1];
  return randomBytes(16).toString("hex");
}

/** The `traceparent` a call arrived with, to carry into the events it publishes. */
export function traceparentOf(ctx: HandlerContext): string | undefined {
  return ctx.requestHeader.get("traceparent") ?? undefined;
}
