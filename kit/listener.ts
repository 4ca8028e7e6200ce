// The connection bounds are enforced here rather than by Node alone: the HTTP/1.1 and HTTP/2
// servers are handed connections ("connection" events) and never listen, so Node never starts
// the HTTP/1.1 headers and request checks (started on "listening", emitted here instead); it
// has no deadline for the first bytes, which arrive before either server sees the socket, and
// no timeout for a client's SETTINGS; and its HTTP/2 idle timer would also close sessions with
// a quiet open stream. The cap on connections is Node's own (net.Server maxConnections).
import { once } from "node:events";
import type http from "node:http";
import http2 from "node:http2";
import net from "node:net";
import type { Duplex } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import { createClientErrors } from "./client-error.ts";
import {
  type ConnectionLimits,
  createHttp1Server,
  defaultConnectionLimits,
  firstBytesDeadline,
  guardHttp2Session,
} from "./connection-limits.ts";

/** A request handler that serves both HTTP/1.1 and HTTP/2 (compat API) requests. */
export type DualHandler = (
  req: http.IncomingMessage | http2.Http2ServerRequest,
  res: http.ServerResponse | http2.Http2ServerResponse,
) => void;

/** Takes an HTTP/1.1 request that asks to switch protocols, with the connection's socket. */
export type UpgradeHandler = (req: http.IncomingMessage, socket: Duplex, head: Buffer) => void;

/** One TCP port serving HTTP/1.1 and cleartext HTTP/2 (prior knowledge) with one handler. */
export interface DualListener {
  /** Starts listening; resolves with the bound port. */
  listen(port: number, host: string): Promise<number>;
  /** Closes HTTP/1.1 keep-alive connections that have no request in progress. */
  closeIdle(): void;
  /** Stops accepting connections and tells HTTP/2 clients to open no new streams (GOAWAY). */
  stopAccepting(): void;
  /** Lets HTTP/2 sessions close by themselves for up to `waitMs`, then closes every connection. */
  closeAll(waitMs: number): Promise<void>;
}

/**
 * The preface a prior-knowledge HTTP/2 connection opens with (RFC 9113 §3.4). No HTTP/1.1
 * request line starts with it, so the first byte that differs routes a connection to
 * HTTP/1.1, and only the whole preface routes it to HTTP/2.
 */
export const http2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const h2Preface = Buffer.from(http2Preface);

/**
 * HTTP/2 flow-control window of each stream this process receives on (the session's is twice
 * that): how much a peer may send ahead of what has been read. HTTP/2's default, 64 KiB, holds
 * a stream of large messages to one window per round trip.
 */
export const http2WindowBytes = 1024 * 1024;

/**
 * Creates the listener every protomesh process uses, so that one port accepts gRPC (HTTP/2),
 * Connect and gRPC-Web (either version) and plain HTTP/1.1 for health and metrics, within
 * `limits` (by default the server settings' defaults).
 */
export function createDualListener(
  handle: DualHandler,
  upgrade?: UpgradeHandler,
  limits: ConnectionLimits = defaultConnectionLimits,
): DualListener {
  const clientErrors = createClientErrors(limits);
  const h1 = createHttp1Server(limits, (req, res) => {
    clientErrors.track(req, res);
    handle(req, res);
  });
  if (upgrade !== undefined) h1.on("upgrade", upgrade);
  h1.on("clientError", clientErrors.onClientError);
  const h2 = http2.createServer(
    { maxSessionMemory: 32, settings: { initialWindowSize: http2WindowBytes } },
    handle,
  );
  const sessions = new Set<http2.Http2Session>();
  h2.on("session", (session) => {
    sessions.add(session);
    session.once("close", () => sessions.delete(session));
    session.setLocalWindowSize(2 * http2WindowBytes);
    guardHttp2Session(session, limits);
  });
  const sockets = new Set<net.Socket>();
  const tcp = net.createServer((socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    routeConnection(socket, h1, h2, firstBytesDeadline(socket, limits));
  });
  // Connections past the cap are closed as soon as they are accepted, unread.
  tcp.maxConnections = limits.MAX_CONNECTIONS;
  return {
    listen(port, host) {
      return new Promise((resolve, reject) => {
        tcp.once("error", reject);
        tcp.listen(port, host, () => {
          tcp.off("error", reject);
          resolve((tcp.address() as net.AddressInfo).port);
        });
      });
    },
    closeIdle: () => h1.closeIdleConnections(),
    stopAccepting() {
      tcp.close();
      for (const session of sessions) session.close();
    },
    async closeAll(waitMs) {
      // A response can be finished before its last frames have left: let each HTTP/2 session
      // close by itself after GOAWAY (it does once its streams are done), within a bound.
      await Promise.race([
        // A session that fails while closing has closed too: its error is not this wait's.
        Promise.all([...sessions].map((session) => once(session, "close").catch(() => {}))),
        sleep(waitMs),
      ]);
      for (const session of sessions) session.destroy();
      h1.closeAllConnections();
      for (const socket of sockets) socket.destroy();
      // Stops the HTTP/1.1 timeout checks; the server itself never listened.
      h1.close();
    },
  };
}

/**
 * Hands a new connection to the HTTP/2 or the HTTP/1.1 server, by its first bytes, then lifts
 * the deadline for them.
 */
function routeConnection(
  socket: net.Socket,
  h1: http.Server,
  h2: http2.Http2Server,
  liftDeadline: () => void,
): void {
  let head: Buffer = Buffer.alloc(0);
  const onData = (chunk: Buffer) => {
    head = head.length === 0 ? chunk : Buffer.concat([head, chunk]);
    const n = Math.min(head.length, h2Preface.length);
    const mayBeH2 = head.subarray(0, n).equals(h2Preface.subarray(0, n));
    if (mayBeH2 && head.length < h2Preface.length) return;
    liftDeadline();
    socket.off("data", onData);
    socket.pause();
    socket.unshift(head);
    if (mayBeH2) {
      // The HTTP/2 session takes over the socket's handle and first drains what is buffered.
      h2.emit("connection", socket);
    } else {
      h1.emit("connection", socket);
      socket.resume();
    }
  };
  socket.on("data", onData);
}
