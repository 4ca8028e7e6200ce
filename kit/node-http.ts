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

/** The path of a request URL, without its query string. */
export function pathOf(req: NodeRequest): string {
  const url = req.url ?? "/";
  const query = url.indexOf("?");
  return query === -1 ? url : url.slice(0, query);
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
