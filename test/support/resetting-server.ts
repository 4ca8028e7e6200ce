import http2 from "node:http2";
import type net from "node:net";

/** An HTTP/2 server that fails every call before any response, one way or another. */
export interface ResettingServer {
  /** Base URL for clients: http://127.0.0.1:<port>. */
  readonly url: string;
  /** How many calls reached it (and failed), health checks left out. */
  requests(): number;
  close(): Promise<void>;
}

/**
 * How the server fails a call: `connection` the way a crashed process does, the connection gone
 * with a TCP reset after the request arrived; `refused-stream` the way a draining server does,
 * the stream reset with REFUSED_STREAM (the request was not processed: RFC 9113 §8.7).
 */
export type ResetKind = "connection" | "refused-stream";

/**
 * Starts, on a free port, an instance that fails every call before its response headers. It has
 * no health service: a health check gets 404, as from a server that does not serve it.
 */
export async function startResettingServer(
  kind: ResetKind = "connection",
): Promise<ResettingServer> {
  let requests = 0;
  const sockets = new Set<net.Socket>();
  const server = http2.createServer();
  // A session's own socket is a proxy that refuses a reset: the raw connections are kept.
  server.on("connection", (socket: net.Socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
  });
  server.on("stream", (stream, headers) => {
    if (String(headers[":path"]).startsWith("/grpc.health.v1.Health/")) {
      stream.respond({ ":status": 404 }, { endStream: true });
      return;
    }
    requests++;
    if (kind === "connection") {
      for (const socket of sockets) socket.resetAndDestroy();
      return;
    }
    stream.on("error", () => {});
    stream.close(http2.constants.NGHTTP2_REFUSED_STREAM);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests: () => requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        // Clients keep their sessions open: the server closes once they are gone.
        for (const socket of sockets) socket.destroy();
      }),
  };
}
