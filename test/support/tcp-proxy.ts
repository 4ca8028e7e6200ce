import net from "node:net";

/**
 * A TCP proxy in front of a real server, for faults a process cannot produce on itself: a stall
 * (the network or the peer stops answering, sockets stay open) and its end.
 */
export interface TcpProxy {
  /** The port the proxy listens on, on 127.0.0.1. */
  readonly port: number;
  /**
   * Stops forwarding in both directions without closing anything: the peer looks half-open.
   * Bytes that arrive meanwhile are held, as a congested network holds them.
   */
  stall(): void;
  /** Delivers what was held and forwards again. */
  resume(): void;
  /** How many connections the proxy has accepted so far. */
  readonly accepted: number;
  /** Closes the listener and every connection. */
  close(): Promise<void>;
}

interface Direction {
  readonly from: net.Socket;
  readonly to: net.Socket;
  readonly held: Buffer[];
}

/** Starts a proxy on a free port of 127.0.0.1 that forwards to `targetPort` on 127.0.0.1. */
export async function startTcpProxy(targetPort: number): Promise<TcpProxy> {
  let stalled = false;
  let accepted = 0;
  const directions = new Set<Direction>();
  const sockets = new Set<net.Socket>();

  const forward = (direction: Direction): void => {
    direction.from.on("data", (chunk: Buffer) => {
      if (stalled) direction.held.push(chunk);
      else direction.to.write(chunk);
    });
    direction.from.on("end", () => {
      if (!stalled) direction.to.end();
    });
  };

  const server = net.createServer((client) => {
    accepted += 1;
    const upstream = net.connect(targetPort, "127.0.0.1");
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on("error", () => {});
      socket.on("close", () => {
        sockets.delete(socket);
        client.destroy();
        upstream.destroy();
      });
    }
    const up = { from: client, to: upstream, held: [] };
    const down = { from: upstream, to: client, held: [] };
    directions.add(up).add(down);
    client.on("close", () => {
      directions.delete(up);
      directions.delete(down);
    });
    forward(up);
    forward(down);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("proxy has no TCP address");

  return {
    port: address.port,
    get accepted() {
      return accepted;
    },
    stall() {
      stalled = true;
    },
    resume() {
      stalled = false;
      for (const direction of directions) {
        for (const chunk of direction.held.splice(0)) direction.to.write(chunk);
      }
    },
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
