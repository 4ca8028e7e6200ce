import { once } from "node:events";
import net from "node:net";

/** An HTTP/1.1 response read off a raw connection: status, headers and body text. */
export interface RawHttpResponse {
  readonly status: number;
  readonly headers: Record<string, string>;
  readonly body: string;
}

/** Opens a TCP connection to 127.0.0.1:`port`, resolving once it is connected. */
export async function openSocket(port: number): Promise<net.Socket> {
  const socket = net.connect(port, "127.0.0.1");
  // The server may reset a connection it refuses; the test looks at what arrived, not at how.
  socket.on("error", () => {});
  await once(socket, "connect");
  return socket;
}

/** Everything `socket` receives until it closes; resolves when it has closed. */
export function receiveUntilClosed(socket: net.Socket): Promise<Buffer> {
  const chunks: Buffer[] = [];
  socket.on("data", (chunk: Buffer) => chunks.push(chunk));
  return new Promise((resolve) => {
    socket.once("close", () => resolve(Buffer.concat(chunks)));
  });
}

/** Writes `text` on a new connection and collects what comes back until the server closes. */
export async function exchange(port: number, text: string | Buffer): Promise<Buffer> {
  const socket = await openSocket(port);
  const received = receiveUntilClosed(socket);
  socket.write(text);
  return received;
}

/** Parses one HTTP/1.1 response (head and body) from raw bytes. */
export function parseHttpResponse(bytes: Buffer): RawHttpResponse {
  const text = bytes.toString("latin1");
  const end = text.indexOf("\r\n\r\n");
  if (end === -1) throw new Error(`no HTTP response in ${JSON.stringify(text)}`);
  const [statusLine = "", ...lines] = text.slice(0, end).split("\r\n");
  const status = Number(statusLine.split(" ")[1]);
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(":");
    headers[line.slice(0, colon).toLowerCase()] = line.slice(colon + 1).trim();
  }
  return { status, headers, body: text.slice(end + 4) };
}
