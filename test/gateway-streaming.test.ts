// Streaming RPCs over REST through the gateway, between real processes: the gateway's test
// contract served by its library server, a gateway routing it, and real clients (undici's
// EventSource, a line reader, fetch with streamed bodies and forms, a WebSocket client).
import { createHash } from "node:crypto";
import { createInterface } from "node:readline";
import { Readable } from "node:stream";
import { EventSource } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { killAllProcesses, type StartedProcess, startProcess } from "./support/process.ts";

let library: StartedProcess;
let gateway: StartedProcess;
const maxUploadBytes = 8 * 1024 * 1024;

beforeAll(async () => {
  library = await startProcess("gateway/testdata/library-server.js");
  gateway = await startProcess("gateway/testdata/library-gateway.js", {
    env: { LIBRARY_SERVICE_URL: library.url, MAX_UPLOAD_BYTES: String(maxUploadBytes) },
  });
});
afterAll(killAllProcesses);

/** The events an EventSource receives until the server's error event or the stream's end. */
function readEvents(url: string): Promise<{ books: unknown[]; error?: unknown }> {
  return new Promise((resolve, reject) => {
    const source = new EventSource(url);
    const books: unknown[] = [];
    source.onmessage = (event) => books.push(JSON.parse(event.data));
    source.addEventListener("error", (event) => {
      source.close();
      const data = (event as unknown as MessageEvent).data;
      if (typeof data === "string") resolve({ books, error: JSON.parse(data) });
      // The stream ended and the client would reconnect: everything has arrived.
      else if (books.length > 0) resolve({ books });
      else reject(new Error("the event stream failed before any event"));
    });
  });
}

/** The JSON lines of an NDJSON response, read as they arrive. */
async function readLines(res: Response): Promise<unknown[]> {
  const body = Readable.fromWeb(res.body as import("node:stream/web").ReadableStream);
  const lines: unknown[] = [];
  for await (const line of createInterface({ input: body })) lines.push(JSON.parse(line));
  return lines;
}

describe("server streaming over REST", () => {
  it("sends each message as a Server-Sent Event to a client that accepts them", async () => {
    const { books, error } = await readEvents(
      `${gateway.url}/v1/shelves/s1/books:stream?count=3&intervalMs=20`,
    );
    expect(error).toBeUndefined();
    expect(books).toEqual([0, 1, 2].map((i) => expect.objectContaining({ title: `Book ${i}` })));
    expect(books[0]).toMatchObject({ name: "shelves/s1/books/0", pages: "100" });
  });

  it("ends an event stream that fails midway with an error event", async () => {
    const { books, error } = await readEvents(
      `${gateway.url}/v1/shelves/s1/books:stream?count=5&failAfter=2`,
    );
    expect(books).toHaveLength(2);
    expect(error).toEqual({ code: 9, message: "the shelf collapsed", details: [] });
  });

  it("sends NDJSON to other clients, one result per line, and a final error line", async () => {
    const ok = await fetch(`${gateway.url}/v1/shelves/s2/books:stream?count=4`);
    expect(ok.status).toBe(200);
    expect(ok.headers.get("content-type")).toBe("application/x-ndjson");
    const lines = await readLines(ok);
    expect(lines).toHaveLength(4);
    expect(lines[3]).toEqual({ result: expect.objectContaining({ title: "Book 3" }) });

    const failed = await fetch(`${gateway.url}/v1/shelves/s2/books:stream?count=4&failAfter=1`);
    const failedLines = await readLines(failed);
    expect(failedLines).toEqual([
      { result: expect.objectContaining({ title: "Book 0" }) },
      { error: { code: 9, message: "the shelf collapsed", details: [] } },
    ]);
  });

  it("answers a stream that fails before its first message with an ordinary JSON error", async () => {
    const res = await fetch(`${gateway.url}/v1/shelves/s3/books:stream?count=3&failAfter=0`, {
      headers: { accept: "text/event-stream" },
    });
    expect(res.status).toBe(400);
    expect(res.headers.get("content-type")).toBe("application/json");
    expect(await res.json()).toMatchObject({ code: 9, message: "the shelf collapsed" });
  });

  it("answers an empty stream with an empty body", async () => {
    const res = await fetch(`${gateway.url}/v1/shelves/s4/books:stream?count=0`);
    expect(res.status).toBe(200);
    expect(await res.text()).toBe("");
  });
});

/** The bytes the library server sends for a download: each byte depends on its offset. */
function expectedBytes(size: number): Buffer {
  const out = Buffer.alloc(size);
  for (let i = 0; i < size; i++) out[i] = i % 251;
  return out;
}

describe("google.api.HttpBody downloads", () => {
  it("streams raw bytes with the content type of the first message", async () => {
    const size = 3 * 1024 * 1024 + 17;
    const res = await fetch(
      `${gateway.url}/v1/books/b1:download?sizeBytes=${size}&chunkBytes=65536&contentType=text/csv`,
    );
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("text/csv");
    const body = Buffer.from(await res.arrayBuffer());
    expect(body.length).toBe(size);
    expect(body.equals(expectedBytes(size))).toBe(true);
  });

  it("aborts the body when the stream fails midway, so the client cannot mistake it for whole", async () => {
    const res = await fetch(
      `${gateway.url}/v1/books/b1:download?sizeBytes=1000000&chunkBytes=10000&failAfterBytes=500000`,
    );
    expect(res.status).toBe(200);
    await expect(res.arrayBuffer()).rejects.toThrow();
  });
});

/** A request body that yields `total` bytes in pieces, as a client streaming from disk would. */
function streamedBody(total: number, piece = 256 * 1024): ReadableStream<Uint8Array> {
  const source = expectedBytes(piece);
  let sent = 0;
  return new ReadableStream({
    pull(controller) {
      if (sent >= total) {
        controller.close();
        return;
      }
      const n = Math.min(piece, total - sent);
      controller.enqueue(source.subarray(0, n));
      sent += n;
    },
  });
}

function sha256OfPieces(total: number, piece = 256 * 1024): string {
  const hash = createHash("sha256");
  const source = expectedBytes(piece);
  for (let sent = 0; sent < total; sent += piece) {
    hash.update(source.subarray(0, Math.min(piece, total - sent)));
  }
  return hash.digest("hex");
}

describe("client-streaming uploads over REST", () => {
  it("streams a raw body into chunks after a first message bound from the path and query", async () => {
    const size = 6 * 1024 * 1024;
    const res = await fetch(`${gateway.url}/v1/shelves/s1/books:upload?book.title=Dune`, {
      method: "POST",
      headers: { "content-type": "application/octet-stream" },
      body: streamedBody(size),
      duplex: "half",
    } as RequestInit);
    expect(res.status).toBe(200);
    const result = (await res.json()) as Record<string, unknown>;
    expect(result).toMatchObject({
      shelfId: "s1",
      title: "Dune",
      sizeBytes: String(size),
      sha256: sha256OfPieces(size),
    });
    // Metadata first, then the content in more than one piece.
    expect(result.messageCount as number).toBeGreaterThan(2);
  });

  it("takes the file of a multipart form, with its text fields bound like query parameters", async () => {
    const content = expectedBytes(300_000);
    const form = new FormData();
    form.append("book.title", "Solaris");
    form.append("file", new Blob([content]), "solaris.txt");
    const res = await fetch(`${gateway.url}/v1/shelves/s2/books:upload`, {
      method: "POST",
      body: form,
    });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({
      shelfId: "s2",
      title: "Solaris",
      sizeBytes: "300000",
      sha256: createHash("sha256").update(content).digest("hex"),
    });
  });

  it("refuses a form whose fields come after its file, or that has no file", async () => {
    const late = new FormData();
    late.append("file", new Blob(["abc"]), "a.txt");
    late.append("book.title", "Late");
    const res = await fetch(`${gateway.url}/v1/shelves/s2/books:upload`, {
      method: "POST",
      body: late,
    });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { message: string }).message).toMatch(/before the file/);

    const empty = new FormData();
    empty.append("book.title", "Nothing");
    const none = await fetch(`${gateway.url}/v1/shelves/s2/books:upload`, {
      method: "POST",
      body: empty,
    });
    expect(none.status).toBe(400);
    expect(((await none.json()) as { message: string }).message).toMatch(/no file/);
  });

  it("stops an upload over the limit with 413", async () => {
    const res = await fetch(`${gateway.url}/v1/shelves/s1/books:upload`, {
      method: "POST",
      body: streamedBody(maxUploadBytes + 1024 * 1024),
      duplex: "half",
    } as RequestInit);
    // Answered before the client has sent everything, on a connection closed after it.
    expect(res.status).toBe(413);
    expect(res.headers.get("connection")).toBe("close");
    expect(((await res.json()) as { code: number }).code).toBe(8);
  });

  it("refuses a query parameter naming the streamed field", async () => {
    const res = await fetch(`${gateway.url}/v1/shelves/s1/books:upload?chunk=abc`, {
      method: "POST",
      body: "x",
    });
    expect(res.status).toBe(400);
  });
});

/** Opens a WebSocket and resolves once it is open, or rejects with the HTTP refusal. */
function openSocket(path: string, protocols: string[] = []): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${gateway.url.replace("http", "ws")}${path}`, protocols);
    ws.once("open", () => resolve(ws));
    ws.once("unexpected-response", (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
    ws.once("error", reject);
  });
}

/** Collects frames until the socket closes. */
function collect(ws: WebSocket): Promise<{ frames: unknown[]; code: number; reason: string }> {
  return new Promise((resolve) => {
    const frames: unknown[] = [];
    ws.on("message", (data) => frames.push(JSON.parse(String(data))));
    ws.once("close", (code, reason) => resolve({ frames, code, reason: String(reason) }));
  });
}

describe("bidirectional streaming over WebSocket", () => {
  it("relays JSON messages both ways with the path variables bound into each", async () => {
    const ws = await openSocket("/v1/shelves/s9:converse");
    const closed = collect(ws);
    const first = new Promise((resolve) => ws.once("message", resolve));
    ws.send(JSON.stringify({ text: "hello", repeat: 2 }));
    await first;
    ws.send(JSON.stringify({ text: "again", repeat: 1 }));
    await new Promise((r) => setTimeout(r, 200));
    ws.close(1000);
    const { frames } = await closed;
    expect(frames).toEqual([
      { shelfId: "s9", text: "hello" },
      { shelfId: "s9", text: "hello", index: 1 },
      { shelfId: "s9", text: "again" },
    ]);
  });

  it("sends a final error frame and closes with 4000 + the code when the RPC fails", async () => {
    const ws = await openSocket("/v1/shelves/s9:converse");
    const closed = collect(ws);
    ws.send(JSON.stringify({ text: "bad", repeat: -1 }));
    const { frames, code, reason } = await closed;
    expect(frames).toEqual([
      { error: { code: 3, message: "repeat must not be negative", details: [] } },
    ]);
    expect(code).toBe(4003);
    expect(reason).toBe("invalid_argument");
  });

  it("refuses a malformed message with an error frame", async () => {
    const ws = await openSocket("/v1/shelves/s9:converse");
    const closed = collect(ws);
    ws.send("{not json");
    const { frames, code } = await closed;
    expect(frames[0]).toMatchObject({ error: { code: 3 } });
    expect(code).toBe(4003);
  });

  it("selects the client's subprotocol and never echoes a bearer one", async () => {
    const ws = await openSocket("/v1/shelves/s9:converse", ["json", "bearer.abc"]);
    expect(ws.protocol).toBe("json");
    ws.close();
  });

  it("answers a plain HTTP request to a bidirectional route with 426", async () => {
    const res = await fetch(`${gateway.url}/v1/shelves/s9:converse`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{}",
    });
    expect(res.status).toBe(426);
    expect(res.headers.get("upgrade")).toBe("websocket");
  });

  it("refuses WebSockets on other routes: 404 unknown, 400 not bidirectional", async () => {
    await expect(openSocket("/v1/nothing")).rejects.toThrow("HTTP 404");
    await expect(openSocket("/v1/shelves/s1")).rejects.toThrow("HTTP 400");
  });
});

describe("an upstream that dies during a stream", () => {
  it("ends the event stream with an Unavailable error event, never a clean end", async () => {
    const doomed = await startProcess("gateway/testdata/library-server.js");
    const edge = await startProcess("gateway/testdata/library-gateway.js", {
      env: { LIBRARY_SERVICE_URL: doomed.url },
    });
    const res = await fetch(`${edge.url}/v1/shelves/s1/books:stream?count=100&intervalMs=50`);
    expect(res.status).toBe(200);
    const lines = readLines(res);
    await new Promise((r) => setTimeout(r, 200));
    await doomed.stop("SIGKILL");
    const received = await lines;
    expect(received.length).toBeGreaterThan(1);
    expect(received.at(-1)).toEqual({ error: expect.objectContaining({ code: 14 }) });
  });
});
