import http2 from "node:http2";
import type net from "node:net";

/** An HTTP/2 server that resets its connection on every request, before any response. */
export interface ResettingServer {
  /** Base URL for clients: http://127.0.0.1:<port>. */
  readonly url: string;
  /** How many requests reached it (and were cut off). */
  requests(): number;
  close(): Promise<void>;
}

/**
 * Starts, on a free port, an instance that fails every call the way a crashed process does: the
 * request arrives, then the connection goes with a TCP reset before any response headers.
 */
export async function startResettingServer(): Promise<ResettingServer> {
  let requests = 0;
  const sockets = new Set<net.Socket>();
  const server = http2.createServer();
  // A session's own socket is a proxy that refuses a reset: the raw connections are kept.
  server.on("connection", (socket: net.Socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
  });
  server.on("stream", () => {
    requests++;
    for (const socket of sockets) socket.resetAndDestroy();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests: () => requests,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
