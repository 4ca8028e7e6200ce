import { once } from "node:events";
import http2 from "node:http2";
import { afterEach, describe, expect, it } from "vitest";
import {
  exchange,
  openSocket,
  parseHttpResponse,
  receiveUntilClosed,
} from "../test/support/raw-socket.ts";
import { type ConnectionLimits, defaultConnectionLimits } from "./connection-limits.ts";
import {
  createDualListener,
  type DualHandler,
  type DualListener,
  http2Preface,
} from "./listener.ts";
import type { NodeResponse } from "./node-http.ts";

const goawayFrame = 0x7;

// Answers "ok" once the whole request has arrived; "/hold" answers only when released.
const held: Array<() => void> = [];
const handle: DualHandler = (req, res: NodeResponse) => {
  req.resume();
  req.once("end", () => {
    const answer = () => {
      res.writeHead(200, { "content-type": "text/plain" });
      res.end("ok");
    };
    if (req.url === "/hold") held.push(answer);
    else answer();
  });
};

let listener: DualListener | undefined;

afterEach(async () => {
  await listener?.closeAll(0);
  listener = undefined;
  held.length = 0;
});

/** Starts a listener on a free port with the default limits changed by `overrides`. */
async function start(overrides: Partial<ConnectionLimits>): Promise<number> {
  listener = createDualListener(handle, undefined, { ...defaultConnectionLimits, ...overrides });
  return listener.listen(0, "127.0.0.1");
}

/** The HTTP/2 frames in `bytes`, as type and payload. */
function framesOf(bytes: Buffer): Array<{ type: number; payload: Buffer }> {
  const frames: Array<{ type: number; payload: Buffer }> = [];
  for (let at = 0; at + 9 <= bytes.length; ) {
    const length = bytes.readUIntBE(at, 3);
    frames.push({
      type: bytes.readUInt8(at + 3),
      payload: bytes.subarray(at + 9, at + 9 + length),
    });
    at += 9 + length;
  }
  return frames;
}

/** GETs `path` on an HTTP/2 session and resolves with the response's status. */
function h2Get(session: http2.ClientHttp2Session, path = "/"): Promise<number> {
  return new Promise((resolve, reject) => {
    const stream = session.request({ ":path": path });
    stream.once("response", (headers) => resolve(Number(headers[":status"])));
    stream.once("error", reject);
    stream.resume();
  });
}

async function h2Session(port: number): Promise<http2.ClientHttp2Session> {
  const session = http2.connect(`http://127.0.0.1:${port}`);
  await once(session, "connect");
  return session;
}

describe("the first bytes of a connection", () => {
  it("closes a connection that sends nothing", async () => {
    const port = await start({ FIRST_BYTES_TIMEOUT_MS: 200 });
    const received = await receiveUntilClosed(await openSocket(port));
    expect(received.length).toBe(0);
  });

  it('closes a connection that sends only "PR"', async () => {
    const port = await start({ FIRST_BYTES_TIMEOUT_MS: 200 });
    const received = await exchange(port, "PR");
    expect(received.length).toBe(0);
  });

  it("closes a connection whose HTTP/2 preface stops halfway", async () => {
    const port = await start({ FIRST_BYTES_TIMEOUT_MS: 200 });
    const received = await exchange(port, http2Preface.slice(0, 16));
    expect(received.length).toBe(0);
  });
});

describe("HTTP/1.1 timeouts", () => {
  it("answers headers trickled one byte at a time with 408 and the JSON error body", async () => {
    const port = await start({ HEADERS_TIMEOUT_MS: 300, REQUEST_TIMEOUT_MS: 60_000 });
    const socket = await openSocket(port);
    const received = receiveUntilClosed(socket);
    const head = `GET / HTTP/1.1\r\nhost: x\r\nx-slow: ${"a".repeat(10_000)}`;
    let sent = 0;
    const trickle = setInterval(() => {
      if (!socket.writable) return;
      socket.write(head.charAt(sent));
      sent += 1;
    }, 10);
    const response = parseHttpResponse(await received);
    clearInterval(trickle);
    expect(sent).toBeLessThan(head.length);
    expect(response.status).toBe(408);
    expect(response.headers["content-type"]).toBe("application/json");
    expect(JSON.parse(response.body)).toEqual({
      code: 4,
      message: expect.stringContaining("send the request headers within 300 ms"),
      details: [],
    });
  });

  it("answers a body that does not arrive within the request timeout with 408", async () => {
    const port = await start({ HEADERS_TIMEOUT_MS: 200, REQUEST_TIMEOUT_MS: 400 });
    const received = await exchange(
      port,
      "POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 10\r\n\r\na",
    );
    const response = parseHttpResponse(received);
    expect(response.status).toBe(408);
    expect(JSON.parse(response.body)).toEqual({
      code: 4,
      message: expect.stringContaining("the whole request within 400 ms"),
      details: [],
    });
  });
});

describe("HTTP/2 timeouts", () => {
  it("drops a client that sends its preface but never its SETTINGS", async () => {
    const port = await start({ HTTP2_SETTINGS_TIMEOUT_MS: 200 });
    const frames = framesOf(await exchange(port, http2Preface));
    const goaway = frames.find((frame) => frame.type === goawayFrame);
    expect(goaway?.payload.readUInt32BE(4)).toBe(http2.constants.NGHTTP2_SETTINGS_TIMEOUT);
  });

  it("closes an idle session with GOAWAY", async () => {
    const port = await start({ HTTP2_IDLE_TIMEOUT_MS: 300 });
    const session = await h2Session(port);
    expect(await h2Get(session)).toBe(200);
    const [code] = await once(session, "goaway");
    await once(session, "close");
    expect(code).toBe(http2.constants.NGHTTP2_NO_ERROR);
  });

  it("keeps a session whose only stream is open but quiet, and one that sent its SETTINGS", async () => {
    const port = await start({ HTTP2_IDLE_TIMEOUT_MS: 300, HTTP2_SETTINGS_TIMEOUT_MS: 150 });
    const holding = await h2Session(port);
    const status = h2Get(holding, "/hold");
    await expect.poll(() => held.length).toBe(1);
    // Opened after the held stream's last frame, this session's idle timer expires later.
    const idle = await h2Session(port);
    await once(idle, "close");
    expect(holding.closed).toBe(false);
    for (const release of held) release();
    expect(await status).toBe(200);
    holding.close();
  });
});

describe("the cap on open connections", () => {
  it("refuses the connection past the cap and keeps answering the open ones", async () => {
    const port = await start({ MAX_CONNECTIONS: 2 });
    const sessions = [await h2Session(port), await h2Session(port)];
    for (const session of sessions) expect(await h2Get(session)).toBe(200);
    const refused = await receiveUntilClosed(await openSocket(port));
    expect(refused.length).toBe(0);
    for (const session of sessions) expect(await h2Get(session)).toBe(200);
    for (const session of sessions) session.close();
  });

  it("serves new clients again once silent connections at the cap have timed out", async () => {
    const cap = 50;
    // Long enough for the refused client to arrive while the silent ones still hold the cap.
    const port = await start({ MAX_CONNECTIONS: cap, FIRST_BYTES_TIMEOUT_MS: 2_000 });
    const silent = await Promise.all(Array.from({ length: cap }, () => openSocket(port)));
    const closed = Promise.all(silent.map(receiveUntilClosed));
    await expect(fetch(`http://127.0.0.1:${port}/`)).rejects.toThrow();
    await closed;
    const response = await fetch(`http://127.0.0.1:${port}/`);
    expect(response.status).toBe(200);
    expect(await response.text()).toBe("ok");
  });
});
