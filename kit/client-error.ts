import http from "node:http";
import type { Duplex } from "node:stream";
import { Code, ConnectError } from "@connectrpc/connect";
import type { ConnectionLimits } from "./connection-limits.ts";
import { errorBodyOf } from "./error-body.ts";

// What Node's HTTP/1.1 server reports through "clientError" (node:_http_server), by code.
const headerOverflow = "HPE_HEADER_OVERFLOW";
const chunkExtensionsOverflow = "HPE_CHUNK_EXTENSIONS_OVERFLOW";
const requestTimeout = "ERR_HTTP_REQUEST_TIMEOUT";
const connectionReset = "ECONNRESET";

/** An error Node's HTTP/1.1 parser or connection checks report, with llhttp's reason. */
type ClientError = Error & { readonly code?: string; readonly reason?: unknown };

/** The status and error a problem on an HTTP/1.1 connection is answered with. */
interface Answer {
  readonly status: number;
  readonly error: ConnectError;
}

/** Answers Node's HTTP/1.1 parser errors and timeouts with the JSON error body. */
export interface ClientErrors {
  /** Notes the response a connection is writing: an error in the middle of it only closes. */
  track(req: http.IncomingMessage, res: http.ServerResponse): void;
  /** The HTTP/1.1 server's "clientError" listener. */
  readonly onClientError: (err: ClientError, socket: Duplex) => void;
}

/**
 * Creates the answers to what Node's HTTP/1.1 server would otherwise answer with an empty
 * body (431, 413, 408, 400): the same JSON error body as every other error, then the close.
 */
export function createClientErrors(limits: ConnectionLimits): ClientErrors {
  const responses = new WeakMap<Duplex, http.ServerResponse>();
  return {
    track: (req, res) => responses.set(req.socket, res),
    onClientError(err, socket) {
      const res = responses.get(socket);
      // Bytes written after a response's head would corrupt it: like Node, close instead.
      const midResponse = res?.headersSent === true && !res.writableEnded;
      if (err.code !== connectionReset && socket.writable && !midResponse) {
        socket.write(responseOf(answerOf(err, limits)));
      }
      socket.destroy();
    },
  };
}

/** What to tell the client about an error of its connection, in the gateway's codes. */
function answerOf(err: ClientError, limits: ConnectionLimits): Answer {
  switch (err.code) {
    case headerOverflow:
      return {
        status: 431,
        error: new ConnectError(
          `request headers exceed ${http.maxHeaderSize} bytes: send fewer or shorter headers`,
          Code.ResourceExhausted,
        ),
      };
    case chunkExtensionsOverflow:
      return {
        status: 413,
        error: new ConnectError(
          "chunk extensions are too long: send the body's chunks without extensions",
          Code.ResourceExhausted,
        ),
      };
    case requestTimeout:
      return {
        status: 408,
        error: new ConnectError(timeoutMessage(limits), Code.DeadlineExceeded),
      };
    default: {
      const reason = typeof err.reason === "string" ? err.reason : err.message;
      return {
        status: 400,
        error: new ConnectError(`malformed HTTP/1.1 request: ${reason}`, Code.InvalidArgument),
      };
    }
  }
}

function timeoutMessage(limits: ConnectionLimits): string {
  const headers = `send the request headers within ${limits.HEADERS_TIMEOUT_MS} ms`;
  if (limits.REQUEST_TIMEOUT_MS === 0) return `the request came too slowly: ${headers}`;
  return `the request came too slowly: ${headers} and the whole request within ${limits.REQUEST_TIMEOUT_MS} ms`;
}

/** A complete HTTP/1.1 response with the JSON error body, for a connection about to close. */
function responseOf({ status, error }: Answer): string {
  const body = JSON.stringify(errorBodyOf(error));
  return (
    `HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\n` +
    "content-type: application/json\r\n" +
    "cache-control: no-store\r\n" +
    `content-length: ${Buffer.byteLength(body)}\r\n` +
    "connection: close\r\n\r\n" +
    body
  );
}
