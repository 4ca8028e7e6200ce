import http from "node:http";
import http2 from "node:http2";
import type net from "node:net";
import { loadConfig, type ServerConfig, serverConfigSchema } from "./config.ts";

/** The bounds a listener puts on its connections: the server settings of those names. */
export type ConnectionLimits = Pick<
  ServerConfig,
  | "MAX_CONNECTIONS"
  | "FIRST_BYTES_TIMEOUT_MS"
  | "HEADERS_TIMEOUT_MS"
  | "REQUEST_TIMEOUT_MS"
  | "HTTP2_SETTINGS_TIMEOUT_MS"
  | "HTTP2_IDLE_TIMEOUT_MS"
>;

/** The limits of a listener given none: the defaults of the server settings. */
export const defaultConnectionLimits: ConnectionLimits = loadConfig(serverConfigSchema(0), {});

// Node checks its HTTP/1.1 timeouts on an interval, so a timeout fires up to one interval
// late: a tenth of the headers timeout (the shorter) keeps that within 10%, and once a second
// is enough.
const maxCheckingIntervalMs = 1_000;

/**
 * Creates an HTTP/1.1 server for connections handed to it, that enforces the headers and
 * request timeouts although it never listens itself.
 */
export function createHttp1Server(
  limits: ConnectionLimits,
  listener: http.RequestListener,
): http.Server {
  const request = limits.REQUEST_TIMEOUT_MS;
  // Node refuses a headers timeout longer than the request timeout; the shorter one would
  // fire first anyway.
  const headers =
    request === 0 ? limits.HEADERS_TIMEOUT_MS : Math.min(limits.HEADERS_TIMEOUT_MS, request);
  const h1 = http.createServer(
    {
      headersTimeout: headers,
      requestTimeout: request,
      connectionsCheckingInterval: Math.min(maxCheckingIntervalMs, Math.ceil(headers / 10)),
    },
    listener,
  );
  // node:_http_server starts its connection tracking (the timeout checks, and the lists that
  // closeIdleConnections and closeAllConnections walk) from its own "listening" listener.
  h1.emit("listening");
  return h1;
}

/**
 * Closes a new connection that has not shown its protocol within FIRST_BYTES_TIMEOUT_MS;
 * returns the function that lifts the deadline once it has.
 */
export function firstBytesDeadline(socket: net.Socket, limits: ConnectionLimits): () => void {
  const timer = setTimeout(() => socket.destroy(), limits.FIRST_BYTES_TIMEOUT_MS);
  const lift = () => clearTimeout(timer);
  socket.once("close", lift);
  return lift;
}

/**
 * Bounds an HTTP/2 session: a client that sends no SETTINGS frame after its preface within
 * HTTP2_SETTINGS_TIMEOUT_MS is dropped (SETTINGS_TIMEOUT), and a session with no open stream
 * and no frame for HTTP2_IDLE_TIMEOUT_MS is closed (GOAWAY).
 */
export function guardHttp2Session(session: http2.Http2Session, limits: ConnectionLimits): void {
  const settings = setTimeout(() => {
    const reason = `no SETTINGS frame within ${limits.HTTP2_SETTINGS_TIMEOUT_MS} ms`;
    session.destroy(new Error(reason), http2.constants.NGHTTP2_SETTINGS_TIMEOUT);
  }, limits.HTTP2_SETTINGS_TIMEOUT_MS);
  const liftSettings = () => clearTimeout(settings);
  session.once("remoteSettings", liftSettings);
  session.once("close", liftSettings);

  let open = 0;
  session.on("stream", (stream: http2.ServerHttp2Stream) => {
    open += 1;
    stream.once("close", () => {
      open -= 1;
    });
  });
  // Node's session timer fires after a time without frames even while a quiet stream is open
  // (a health Watch): such a session is kept until its streams are done. Its expiries are
  // heard with on(), as setTimeout's own callback is called for the first one only.
  session.setTimeout(limits.HTTP2_IDLE_TIMEOUT_MS);
  session.on("timeout", () => {
    if (open === 0) session.close();
  });
}
