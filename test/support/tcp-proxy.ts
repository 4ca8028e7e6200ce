import net from "node:net";

/** How a TCP proxy treats the bytes it is handed. */
export type ProxyMode = "forward" | "stall" | "black-hole";

/** A TCP proxy in front of a real server, to make it slow, silent or unreachable. */
export interface TcpProxy {
  /** The port the proxy listens on (127.0.0.1). */
  readonly port: number;
  /**
   * "forward" passes bytes both ways; "stall" holds them until the mode is "forward" again,
   * then passes them on in order (a stalled peer that catches up); "black-hole" drops them for
   * good while keeping every connection open (a half-open peer).
   */
  setMode(mode: ProxyMode): void;
  /** Destroys every connection through the proxy with a TCP reset. */
  resetAll(): void;
  /** Stops listening and destroys every connection. */
  close(): Promise<void>;
}

/** Starts a TCP proxy on a free port that forwards to `targetPort` on 127.0.0.1. */
export async function startTcpProxy(targetPort: number): Promise<TcpProxy> {
  let mode: ProxyMode = "forward";
  const held: (() => void)[] = [];
  const sockets = new Set<net.Socket>();

  const pass = (from: net.Socket, to: net.Socket) => {
    from.on("data", (chunk) => {
      if (mode === "black-hole") return;
      if (mode === "stall") held.push(() => to.write(chunk));
      else to.write(chunk);
    });
  };
  const server = net.createServer((client) => {
    const upstream = net.connect(targetPort, "127.0.0.1");
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on("close", () => sockets.delete(socket));
      socket.on("error", () => {});
    }
    pass(client, upstream);
    pass(upstream, client);
    client.on("close", () => upstream.destroy());
    upstream.on("close", () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address() as net.AddressInfo;
  return {
    port: address.port,
    setMode(next) {
      mode = next;
      if (next === "forward") for (const write of held.splice(0)) write();
      if (next === "black-hole") held.length = 0;
    },
    resetAll() {
      for (const socket of sockets) socket.resetAndDestroy();
    },
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
