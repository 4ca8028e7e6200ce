import type { EventEmitter } from "node:events";
import type { IncomingHttpHeaders, IncomingMessage } from "node:http";
import type { Http2ServerRequest } from "node:http2";
import { addAbortSignal, type Duplex } from "node:stream";
import { Code, ConnectError } from "@connectrpc/connect";

/** The part of an HTTP/1.1 or HTTP/2 (compat API) request that protomesh servers read. */
export interface NodeRequest {
  readonly method?: string | undefined;
  readonly url?: string | undefined;
  readonly headers: IncomingHttpHeaders;
}

/** The part of an HTTP/1.1 or HTTP/2 (compat API) response that protomesh servers write. */
export interface NodeResponse {
  writeHead(status: number, headers: Record<string, string>): unknown;
  addTrailers(trailers: Record<string, string>): void;
  end(): unknown;
  end(body: string): unknown;
  once(event: "close", listener: () => void): unknown;
}

// A "." or ".." segment, plain or percent-encoded: the URL parser resolves both.
const dotSegment = /\/(?:\.|%2e){1,2}(?:\/|$)/i;

/**
 * The path of a request target, without its query string, its dot segments resolved (RFC 3986
 * §5.2.4: "/a/./b/../c" is "/a/c"). An absolute-form target ("http://host/path?query", which an
 * HTTP/1.1 server must accept: RFC 9112 §3.2.2) gives the path it names.
 */
export function pathOf(req: NodeRequest): string {
  const url = req.url ?? "/";
  const query = url.indexOf("?");
  const target = query === -1 ? url : url.slice(0, query);
  if (target.startsWith("/")) {
    // Parsed only when there is something to resolve; prefixed so that "//x" stays a path.
    return dotSegment.test(target) ? new URL(`http://host${target}`).pathname : target;
  }
  return URL.canParse(target) ? new URL(target).pathname : target;
}

/**
 * Resolves when a writable that refused a write can take more ("drain"), or when it closed,
 * which a cancelled stream does instead of draining.
 */
export function drainedOrClosed(stream: EventEmitter): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      stream.off("drain", done);
      stream.off("close", done);
      resolve();
    };
    stream.once("drain", done);
    stream.once("close", done);
  });
}

/**
 * Makes the body of a request fail when the client resets its HTTP/2 stream, as an HTTP/1.1
 * body fails when its connection closes early. Node ends such a body as if it were complete: a
 * client stream cut short would pass for a whole one.
 */
export function failBodyOnReset(req: IncomingMessage | Http2ServerRequest): void {
  if (req.httpVersionMajor !== 2) return;
  const request = req as Http2ServerRequest;
  request.stream.once("aborted", () => {
    // The error reaches whoever reads the body; the request itself has no one to tell.
    request.on("error", () => {});
    request.destroy(new ConnectError("the client cancelled the call", Code.Canceled));
  });
}

/** Whether the client went away before the end of the request's body. */
export function clientWentAway(req: IncomingMessage | Http2ServerRequest): boolean {
  return req.aborted || !req.complete;
}

/**
 * A function that resets an HTTP/2 stream with CANCEL at once. Http2Stream.close ends what the
 * stream sends first (END_STREAM), then resets it: the peer would take a body cut short for a
 * whole one. Destroying the stream with an AbortError resets it with CANCEL and nothing else.
 */
export function cancellerOf(stream: Duplex): () => void {
  const controller = new AbortController();
  addAbortSignal(controller.signal, stream);
  return () => controller.abort();
}
