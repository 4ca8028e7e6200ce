import { once } from "node:events";
import http from "node:http";
import http2 from "node:http2";
import net from "node:net";
import type { Duplex } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";

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

// RFC 9113 §3.4: a prior-knowledge HTTP/2 connection opens with this preface; no HTTP/1.1
// request line starts with "PRI", so three bytes tell the two protocols apart.
const h2PrefacePrefix = Buffer.from("PRI");

/**
 * Creates the listener every protomesh process uses, so that one port accepts gRPC (HTTP/2),
 * Connect and gRPC-Web (either version) and plain HTTP/1.1 for health and metrics.
 */
export function createDualListener(handle: DualHandler, upgrade?: UpgradeHandler): DualListener {
  const h1 = http.createServer(handle);
  if (upgrade !== undefined) h1.on("upgrade", upgrade);
  // Slowloris guard: a client gets this long to send its request headers.
  h1.headersTimeout = 30_000;
  h1.requestTimeout = 0;
  const h2 = http2.createServer({ maxSessionMemory: 32 }, handle);
  const sessions = new Set<http2.Http2Session>();
  h2.on("session", (session) => {
    sessions.add(session);
    session.once("close", () => sessions.delete(session));
  });
  const sockets = new Set<net.Socket>();
  const tcp = net.createServer((socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    routeConnection(socket, h1, h2);
  });
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
        Promise.all([...sessions].map((session) => once(session, "close"))),
        sleep(waitMs),
      ]);
      for (const session of sessions) session.destroy();
      h1.closeAllConnections();
      for (const socket of sockets) socket.destroy();
    },
  };
}

/** Hands a new connection to the HTTP/2 or the HTTP/1.1 server, by its first bytes. */
function routeConnection(socket: net.Socket, h1: http.Server, h2: http2.Http2Server): void {
  let head: Buffer = Buffer.alloc(0);
  const onData = (chunk: Buffer) => {
    head = head.length === 0 ? chunk : Buffer.concat([head, chunk]);
    const n = Math.min(head.length, h2PrefacePrefix.length);
    const mayBeH2 = head.subarray(0, n).equals(h2PrefacePrefix.subarray(0, n));
    if (mayBeH2 && head.length < h2PrefacePrefix.length) return;
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
