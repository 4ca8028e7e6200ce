import type { EventEmitter } from "node:events";
import type { IncomingHttpHeaders } from "node:http";

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
