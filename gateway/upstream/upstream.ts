import http2 from "node:http2";
import { Code, ConnectError } from "@connectrpc/connect";
import { markUnanswered } from "../../kit/balance/retryable.ts";
import type { SessionKeeper } from "../../kit/balance/session-keeper.ts";
import type { Log } from "../../kit/log.ts";
import { cancellerOf, drainedOrClosed } from "../../kit/node-http.ts";
import { envelopeHeaderOf, errorOfResponse, readMessages } from "./connect-wire.ts";

/** What an upstream call sends besides its messages. */
export interface CallOptions {
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

/**
 * A streaming call in progress (client, server or bidirectional streaming): request messages
 * go out as they are sent, response messages come in as they arrive, with backpressure both
 * ways.
 */
export interface StreamCall {
  /**
   * Sends one encoded request message, given whole or as parts that make it up in order (a
   * large field's bytes then go out without a copy); resolves once the upstream can take more.
   */
  send(...message: Uint8Array[]): Promise<void>;
  /** Ends the request side: the upstream has every message. */
  end(): void;
  /** Resolves with the response headers; rejects with the call's error if it fails first. */
  readonly headers: Promise<http2.IncomingHttpHeaders>;
  /**
   * The encoded response messages, in order. Ends when the upstream ends the stream
   * successfully; throws the upstream's ConnectError when it ends with an error.
   */
  readonly responses: AsyncIterable<Uint8Array>;
  /** Abandons the call: the upstream sees it cancelled; sends and reads fail with `reason`. */
  cancel(reason: ConnectError): void;
}

/** One upstream service address with one pooled HTTP/2 session, kept alive with PINGs. */
export interface Upstream {
  /** The full name of the service it is an instance of. */
  readonly service: string;
  readonly baseUrl: string;
  /** The live HTTP/2 session, opened (again) when there is none or its peer stopped answering. */
  session(): http2.ClientHttp2Session;
  /**
   * Calls a unary method with the Connect protocol in binary; resolves with the response
   * bytes or rejects with the upstream's ConnectError (Unavailable when it cannot be reached).
   */
  unary(path: string, body: Uint8Array, options: CallOptions): Promise<UnaryResult>;
  /**
   * Opens a streaming call with the Connect protocol in binary; failures to reach the upstream
   * surface as Unavailable from `send`, `headers` and `responses`.
   */
  stream(path: string, options: CallOptions): StreamCall;
  /** Closes the session; calls in flight finish first. */
  close(): void;
}

/** Options of createUpstream. */
export interface UpstreamOptions {
  /** The largest response message (or unary response body) accepted from the upstream. */
  readonly maxResponseBytes: number;
  /** The kept-alive session to the instance (PINGs, idle timeout: kit/balance/session-keeper.ts). */
  readonly sessions: SessionKeeper;
  readonly log: Log;
}

/** An upstream stream's late errors, once its call has settled: nothing waits for them. */
const ignore = () => {};

// The largest error body read from an upstream: Connect error JSON is small.
const maxErrorBytes = 64 * 1024;

/**
 * Creates the client of one instance of `service` at `baseUrl`. Every call is a stream on one shared HTTP/2
 * session, so the hop costs no connection set-up and no per-call client objects.
 */
export function createUpstream(
  service: string,
  baseUrl: string,
  options: UpstreamOptions,
): Upstream {
  const { log, sessions } = options;
  const { host: authority, protocol } = new URL(baseUrl);
  const scheme = protocol.slice(0, -1);
  let closed = false;

  // The client learns which service is unavailable, never where it runs: the address and the
  // cause go to the log.
  function unavailable(cause: unknown): ConnectError {
    log.warn({ service, upstream: baseUrl, err: cause }, "upstream call failed");
    return new ConnectError(
      `service ${service} is unavailable`,
      Code.Unavailable,
      undefined,
      [],
      cause,
    );
  }

  /**
   * Opens the HTTP/2 stream of a Connect call; throws when no session can be had. The headers
   * go as node's flat raw list, with every pseudo-header: node then uses the list as it is,
   * where it would copy a headers object (or a list missing one) first.
   */
  function open(
    path: string,
    call: CallOptions,
    contentType: string,
    contentLength?: number,
  ): http2.ClientHttp2Stream {
    if (closed) throw new Error("gateway is shutting down");
    const headers = [
      ":method",
      "POST",
      ":scheme",
      scheme,
      ":authority",
      authority,
      ":path",
      path,
      "content-type",
      contentType,
      "connect-protocol-version",
      "1",
      "connect-timeout-ms",
      String(Math.max(1, Math.ceil(call.timeoutMs))),
    ];
    if (contentLength !== undefined) headers.push("content-length", String(contentLength));
    for (const name in call.headers) headers.push(name, call.headers[name] as string);
    return sessions.open(headers);
  }

  function unary(path: string, body: Uint8Array, call: CallOptions): Promise<UnaryResult> {
    return new Promise((resolve, reject) => {
      let stream: http2.ClientHttp2Stream;
      try {
        stream = open(path, call, "application/proto", body.byteLength);
      } catch (err) {
        reject(markUnanswered(unavailable(err)));
        return;
      }
      let settled = false;
      const settle = (fn: () => void) => {
        if (settled) return;
        settled = true;
        unwatch();
        // Node keeps a finished stream object a while; without these listeners it holds
        // nothing of the call (the closures reach the caller's whole request), so a call's
        // garbage dies young instead of being promoted to the old generation.
        stream.off("response", onResponse);
        stream.off("data", onData);
        stream.off("end", onEnd);
        stream.off("error", onError);
        stream.on("error", ignore);
        fn();
      };
      const abort = (err: ConnectError) =>
        settle(() => {
          stream.close(http2.constants.NGHTTP2_CANCEL);
          reject(err);
        });
      const unwatch = watchCall(call, abort);

      let status = 0;
      let headers: http2.IncomingHttpHeaders = {};
      const chunks: Buffer[] = [];
      let size = 0;
      const onResponse = (h: http2.IncomingHttpHeaders) => {
        headers = h;
        status = Number(h[":status"]);
      };
      const onData = (chunk: Buffer) => {
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
      };
      const onEnd = () =>
        settle(() => {
          // One chunk is the common case: hand it on without a copy.
          const bytes = chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, size);
          if (status === 200) {
            resolve({ headers, message: bytes });
            return;
          }
          // Ended without response headers: the connection went away before any answer.
          if (status === 0) {
            reject(markUnanswered(unavailable("stream ended without a response")));
            return;
          }
          reject(errorOfResponse(status, headers, bytes));
        });
      const onError = (err: Error) => {
        const error = unavailable(err);
        settle(() => reject(status === 0 ? markUnanswered(error) : error));
      };
      stream.on("response", onResponse);
      stream.on("data", onData);
      stream.on("end", onEnd);
      stream.on("error", onError);
      stream.end(body);
    });
  }

  function stream(path: string, call: CallOptions): StreamCall {
    let failure: ConnectError | undefined;
    let stream: http2.ClientHttp2Stream | undefined;
    let cancel = () => {};
    try {
      stream = open(path, call, "application/connect+proto");
      cancel = cancellerOf(stream);
    } catch (err) {
      failure = markUnanswered(unavailable(err));
    }
    const fail = (err: ConnectError) => {
      if (failure !== undefined) return;
      failure = err;
      finish();
      if (stream !== undefined && !stream.closed) cancel();
    };
    const finish = watchCall(call, fail);

    const live = stream;
    const headers = new Promise<http2.IncomingHttpHeaders>((resolve, reject) => {
      if (live === undefined || failure !== undefined) {
        reject(failure);
        return;
      }
      live.once("response", resolve);
      live.once("close", () => reject(failure ?? unavailable("stream closed")));
    });
    // Observed by `responses` and `send`; a caller that reads neither must not see a rejection.
    headers.catch(() => {});
    live?.on("error", (err) => fail(unavailable(err)));

    async function* responses(): AsyncGenerator<Uint8Array> {
      if (live === undefined) throw failure;
      const response = await headers;
      const status = Number(response[":status"]);
      if (status !== 200) {
        const bytes = await readAll(live, maxErrorBytes);
        finish();
        throw errorOfResponse(status, response, bytes);
      }
      try {
        yield* readMessages(live, options.maxResponseBytes);
        finish();
      } catch (err) {
        if (failure !== undefined) throw failure;
        if (err instanceof ConnectError) {
          fail(err);
          throw err;
        }
        fail(unavailable(err));
        throw failure;
      }
    }

    return {
      async send(...parts) {
        if (live === undefined || failure !== undefined) throw failure;
        let length = 0;
        for (const part of parts) length += part.byteLength;
        live.cork();
        let room = live.write(envelopeHeaderOf(length));
        for (const part of parts) room = live.write(part);
        live.uncork();
        if (!room) await drainedOrClosed(live);
        if (failure !== undefined) throw failure;
        if (live.closed) throw unavailable("stream closed");
      },
      end() {
        if (live !== undefined && failure === undefined) live.end();
      },
      headers,
      responses: { [Symbol.asyncIterator]: responses },
      cancel: fail,
    };
  }

  return {
    service,
    baseUrl,
    session: () => sessions.session(),
    unary,
    stream,
    close() {
      closed = true;
      sessions.close();
    },
  };
}

// Response headers that describe the upstream hop itself, not the call's metadata.
const hopHeaders = new Set([
  "content-type",
  "content-length",
  "content-encoding",
  "accept-encoding",
  "connect-accept-encoding",
  "connect-content-encoding",
  "date",
  "server",
  "vary",
  "transfer-encoding",
  "connection",
  "keep-alive",
]);

/**
 * The response metadata of an upstream call as HTTP response headers for a REST client: the
 * headers the service set, without pseudo-headers and headers of the hop; added to `out`.
 */
export function responseMetadataOf(
  headers: http2.IncomingHttpHeaders,
  out: Record<string, string> = {},
): Record<string, string> {
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined || name.startsWith(":") || hopHeaders.has(name)) continue;
    out[name] = Array.isArray(value) ? value.join(", ") : String(value);
  }
  return out;
}

/** Reads a stream to its end, keeping at most `max` bytes. */
async function readAll(stream: http2.ClientHttp2Stream, max: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stream) {
    if (size >= max) continue;
    chunks.push(chunk as Buffer);
    size += (chunk as Buffer).length;
  }
  return Buffer.concat(chunks).subarray(0, max);
}

/**
 * Fails a call with DeadlineExceeded when its time runs out and with Canceled when its signal
 * aborts; returns the function that stops watching once the call has settled.
 */
function watchCall(call: CallOptions, fail: (err: ConnectError) => void): () => void {
  const timer = setTimeout(
    () => fail(new ConnectError("the upstream call ran out of time", Code.DeadlineExceeded)),
    call.timeoutMs,
  );
  const onAbort = () => fail(new ConnectError("the client went away", Code.Canceled));
  const unwatch = () => {
    clearTimeout(timer);
    call.signal?.removeEventListener("abort", onAbort);
  };
  call.signal?.addEventListener("abort", onAbort, { once: true });
  // Later, not now: the caller holds the returned function only once this has returned.
  if (call.signal?.aborted) queueMicrotask(onAbort);
  return unwatch;
}
