import http2 from "node:http2";
import { Code, ConnectError } from "@connectrpc/connect";
import { codeFromHttpStatus, errorFromJsonBytes } from "@connectrpc/connect/protocol-connect";
import type { Log } from "../kit/log.ts";

/** What an upstream unary call sends besides the message. */
export interface UnaryCallOptions {
  /** Request headers to forward (lower-case names), such as authorization and traceparent. */
  readonly headers: Readonly<Record<string, string>>;
  /** The remaining deadline; the call is aborted when it runs out. */
  readonly timeoutMs: number;
  /** Aborts the call, for example when the HTTP client went away. */
  readonly signal?: AbortSignal;
}

/** A successful unary answer: the response headers and the encoded response message. */
export interface UnaryResult {
  readonly headers: http2.IncomingHttpHeaders;
  readonly message: Uint8Array;
}

/** One upstream service address with one pooled HTTP/2 session. */
export interface Upstream {
  readonly baseUrl: string;
  /** The live HTTP/2 session, opened (again) when there is none. */
  session(): http2.ClientHttp2Session;
  /**
   * Calls a unary method with the Connect protocol in binary; resolves with the response
   * bytes or rejects with the upstream's ConnectError (Unavailable when it cannot be reached).
   */
  unary(path: string, body: Uint8Array, options: UnaryCallOptions): Promise<UnaryResult>;
  /** Closes the session; calls in flight finish first. */
  close(): void;
}

/** Options of createUpstream. */
export interface UpstreamOptions {
  /** The largest response body accepted from the upstream. */
  readonly maxResponseBytes: number;
  readonly log: Log;
}

// The largest error body read from an upstream: Connect error JSON is small.
const maxErrorBytes = 64 * 1024;

/**
 * Creates the client of one upstream base URL. Every call is a stream on one shared HTTP/2
 * session, so the hop costs no connection set-up and no per-call client objects.
 */
export function createUpstream(baseUrl: string, options: UpstreamOptions): Upstream {
  const { log } = options;
  let current: http2.ClientHttp2Session | undefined;
  let closed = false;

  function session(): http2.ClientHttp2Session {
    if (current !== undefined && !current.closed && !current.destroyed) return current;
    const s = http2.connect(baseUrl);
    // A session with no streams must not keep the process alive.
    s.unref();
    const forget = () => {
      if (current === s) current = undefined;
    };
    // After GOAWAY the session takes no new streams: the next call opens a fresh one while
    // this one finishes the streams it has.
    s.once("goaway", forget);
    s.once("close", forget);
    s.on("error", (err) => {
      forget();
      log.warn({ upstream: baseUrl, err }, "upstream session failed");
    });
    current = s;
    return s;
  }

  function unary(path: string, body: Uint8Array, call: UnaryCallOptions): Promise<UnaryResult> {
    return new Promise((resolve, reject) => {
      let stream: http2.ClientHttp2Stream;
      try {
        if (closed) throw new Error("gateway is shutting down");
        stream = session().request({
          ":method": "POST",
          ":path": path,
          ...call.headers,
          "content-type": "application/proto",
          "connect-protocol-version": "1",
          "connect-timeout-ms": String(Math.max(1, Math.ceil(call.timeoutMs))),
          "content-length": String(body.byteLength),
        });
      } catch (err) {
        reject(unavailable(baseUrl, err));
        return;
      }
      let settled = false;
      const settle = (fn: () => void) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        call.signal?.removeEventListener("abort", onAbort);
        fn();
      };
      const abort = (err: ConnectError) =>
        settle(() => {
          stream.close(http2.constants.NGHTTP2_CANCEL);
          reject(err);
        });
      const timer = setTimeout(
        () => abort(new ConnectError("the upstream call ran out of time", Code.DeadlineExceeded)),
        call.timeoutMs,
      );
      const onAbort = () => abort(new ConnectError("the client went away", Code.Canceled));
      call.signal?.addEventListener("abort", onAbort, { once: true });
      if (call.signal?.aborted) onAbort();

      let status = 0;
      let headers: http2.IncomingHttpHeaders = {};
      const chunks: Buffer[] = [];
      let size = 0;
      stream.on("response", (h) => {
        headers = h;
        status = Number(h[":status"]);
      });
      stream.on("data", (chunk: Buffer) => {
        size += chunk.length;
        const limit = status === 200 ? options.maxResponseBytes : maxErrorBytes;
        if (size > limit) {
          abort(
            new ConnectError(
              `upstream response larger than ${limit} bytes`,
              Code.ResourceExhausted,
            ),
          );
          return;
        }
        chunks.push(chunk);
      });
      stream.on("end", () =>
        settle(() => {
          // One chunk is the common case: hand it on without a copy.
          const bytes = chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, size);
          if (status === 200) {
            resolve({ headers, message: bytes });
            return;
          }
          const metadata = metadataOf(headers);
          const fallback = new ConnectError(
            `upstream answered HTTP ${status}`,
            codeFromHttpStatus(status),
            metadata,
          );
          reject(errorFromJsonBytes(bytes, metadata, fallback));
        }),
      );
      stream.on("error", (err) => settle(() => reject(unavailable(baseUrl, err))));
      stream.end(body);
    });
  }

  return {
    baseUrl,
    session,
    unary,
    close() {
      closed = true;
      current?.close();
      current = undefined;
    },
  };
}

/** Response headers without HTTP/2 pseudo-headers, as error metadata. */
function metadataOf(headers: http2.IncomingHttpHeaders): Headers {
  const out = new Headers();
  for (const [name, value] of Object.entries(headers)) {
    if (name.startsWith(":") || value === undefined) continue;
    for (const v of Array.isArray(value) ? value : [value]) out.append(name, String(v));
  }
  return out;
}

function unavailable(baseUrl: string, cause: unknown): ConnectError {
  // The client sees only that the service is unavailable; the cause goes to the log.
  return new ConnectError(
    `upstream ${baseUrl} is unavailable`,
    Code.Unavailable,
    undefined,
    [],
    cause,
  );
}
