import type { IncomingHttpHeaders, IncomingMessage } from "node:http";
import type { Http2ServerRequest } from "node:http2";
import { Code, ConnectError } from "@connectrpc/connect";
import { type DeadlinePolicy, restDeadline, restTimeoutHeader } from "../kit/deadline.ts";

/** A request and response of either HTTP version (node's compat API). */
export type GatewayRequest = IncomingMessage | Http2ServerRequest;
/**
 * The part of an HTTP/1.1 or HTTP/2 (compat API) response the gateway writes; both versions'
 * response classes fit it, so one code path serves both.
 */
export interface GatewayResponse extends NodeJS.WritableStream {
  readonly headersSent: boolean;
  readonly statusCode: number;
  /** True once the whole response has been handed to the connection. */
  readonly writableFinished: boolean;
  writeHead(status: number, headers: Record<string, string | string[]>): unknown;
  setHeader(name: string, value: string): unknown;
  addTrailers(trailers: Record<string, string>): void;
  destroy(): unknown;
}

/**
 * What the gateway keeps of one request while serving it, filled in by whoever serves it: read
 * for its metrics and log line, and called on when its client goes away.
 */
export interface Exchange {
  /** The RPC the request was routed to, "/pkg.Service/Method", once known. */
  rpc?: string;
  /**
   * Cancels the request's upstream call: aborted when the response closes before it finished.
   * The controller itself, not a closure that aborts it: V8 allocates a function assigned to a
   * property in its old generation, where, garbage or not, it would keep everything it captures
   * alive until the next full collection.
   */
  cancel?: AbortController;
}

/**
 * The deadline of a REST or WebSocket call (see restDeadline); InvalidArgument for a malformed
 * `X-Timeout-Ms`.
 */
export function timeoutOf(policy: DeadlinePolicy, path: string, req: GatewayRequest): number {
  const ms = restDeadline(policy, path, req.headers[restTimeoutHeader]);
  if (ms === undefined) {
    throw new ConnectError(
      `${restTimeoutHeader} must be a positive number of milliseconds`,
      Code.InvalidArgument,
    );
  }
  return ms;
}

// Request headers that travel to the upstream service with the call.
const forwardedHeaders = ["authorization", "traceparent", "tracestate", "x-request-id"] as const;

/**
 * The query parameters of a request target. A target without a query shares one empty
 * instance: binding only reads them.
 */
export function queryOf(target: string | undefined): URLSearchParams {
  const start = target?.indexOf("?") ?? -1;
  return start < 0 ? noQuery : new URLSearchParams(target?.slice(start + 1));
}
const noQuery = new URLSearchParams();

/** Reads forwarded headers the way authentication does, without a Headers object per call. */
export function headerReader(headers: Readonly<Record<string, string>>): Pick<Headers, "get"> {
  return { get: (name) => headers[name.toLowerCase()] ?? null };
}

/** The request headers a REST or WebSocket call forwards to its upstream as metadata. */
export function forwardedHeadersOf(req: { headers: IncomingHttpHeaders }): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const name of forwardedHeaders) {
    const value = req.headers[name];
    if (typeof value === "string") headers[name] = value;
  }
  return headers;
}

/** Sets each of `headers` on a response that has not been written yet. */
export function setHeaders(res: GatewayResponse, headers: Record<string, string>): void {
  for (const [name, value] of Object.entries(headers)) res.setHeader(name, value);
}
