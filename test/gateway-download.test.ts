// Ranged HTTP downloads through the gateway, between real processes: the test contract's ReadBook
// (an RPC with the download option) served by the library server from contents it holds in
// memory, a gateway routing it, and fetch (HTTP/1.1) or node's HTTP/2 client.
import { createHash, randomBytes } from "node:crypto";
import http2 from "node:http2";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { killAllProcesses, type StartedProcess, startProcess } from "./support/process.ts";

let library: StartedProcess;
let gateway: StartedProcess;

beforeAll(async () => {
  library = await startProcess("gateway/testdata/library-server.js");
  gateway = await startProcess("gateway/testdata/library-gateway.js", {
    env: { LIBRARY_SERVICE_URL: library.url },
  });
});
afterAll(killAllProcesses);

/** The content of a library book: byte i is i mod 251. */
function contentOf(size: number): Buffer {
  const out = Buffer.alloc(size);
  for (let i = 0; i < size; i++) out[i] = i % 251;
  return out;
}

const b1 = contentOf(1024 * 1024 + 7);
const b1Etag = `"${createHash("sha256").update(b1).digest("hex")}"`;

function read(query: string, init: RequestInit = {}): Promise<Response> {
  return fetch(`${gateway.url}/v1/books/${query}`, init);
}

async function bytesOf(res: Response): Promise<Buffer> {
  return Buffer.from(await res.arrayBuffer());
}

describe("ranged downloads", () => {
  it("sends the whole content with its length, ETag and the upstream's headers", async () => {
    const res = await read("b1:read");
    expect(res.status).toBe(200);
    expect(res.headers.get("content-length")).toBe(String(b1.length));
    expect(res.headers.get("content-range")).toBeNull();
    expect(res.headers.get("accept-ranges")).toBe("bytes");
    expect(res.headers.get("content-type")).toBe("application/x-book");
    expect(res.headers.get("etag")).toBe(b1Etag);
    expect(res.headers.get("content-disposition")).toBe('attachment; filename="b1.bin"');
    expect(res.headers.get("last-modified")).toBe("Tue, 02 Jan 2024 03:04:05 GMT");
    expect((await bytesOf(res)).equals(b1)).toBe(true);
  });

  it.each<[string, number, number]>([
    ["bytes=0-99", 0, 99],
    ["bytes=1000-1048582", 1000, 1048582],
    ["bytes=70000-", 70000, b1.length - 1],
    ["bytes=-5", b1.length - 5, b1.length - 1],
    // A last position past the end stands for the end.
    ["bytes=1048000-9999999", 1048000, b1.length - 1],
    ["bytes=-99999999", 0, b1.length - 1],
  ])("answers %s with 206 and exactly the bytes asked", async (range, first, last) => {
    const res = await read("b1:read?chunkBytes=4096", { headers: { range } });
    expect(res.status).toBe(206);
    expect(res.headers.get("content-range")).toBe(`bytes ${first}-${last}/${b1.length}`);
    expect(res.headers.get("content-length")).toBe(String(last - first + 1));
    expect(res.headers.get("accept-ranges")).toBe("bytes");
    expect((await bytesOf(res)).equals(b1.subarray(first, last + 1))).toBe(true);
  });

  it.each(["bytes=5-2", "bytes=0-9,20-29", "items=0-9", "bytes=x-"])(
    "ignores a Range it cannot use (%s) and sends everything with 200",
    async (range) => {
      const res = await read("b1:read", { headers: { range } });
      expect(res.status).toBe(200);
      expect(res.headers.get("content-range")).toBeNull();
      expect(res.headers.get("content-length")).toBe(String(b1.length));
      expect((await bytesOf(res)).equals(b1)).toBe(true);
    },
  );

  it("still reads the offset and length from the query, without a Range", async () => {
    const res = await read("b1:read?offset=10&length=20");
    expect(res.status).toBe(200);
    expect(res.headers.get("content-length")).toBe("20");
    expect((await bytesOf(res)).equals(b1.subarray(10, 30))).toBe(true);
  });

  it("answers an unsatisfiable range with 416, the size and the JSON error", async () => {
    const res = await read("b1:read", { headers: { range: `bytes=${b1.length}-` } });
    expect(res.status).toBe(416);
    expect(res.headers.get("content-range")).toBe(`bytes */${b1.length}`);
    expect(res.headers.get("content-type")).toBe("application/json");
    expect(await res.json()).toEqual({
      code: 11,
      message: `offset ${b1.length} is beyond the end`,
      details: [],
    });
  });

  it("sends an empty content with 200 and a zero length, whatever the Range", async () => {
    const res = await read("empty:read", { headers: { range: "bytes=-10" } });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-length")).toBe("0");
    expect(res.headers.get("content-range")).toBeNull();
    expect(await res.text()).toBe("");
  });

  it("answers HEAD with the GET's status and headers, without a body", async () => {
    const whole = await read("b1:read", { method: "HEAD" });
    expect(whole.status).toBe(200);
    expect(whole.headers.get("content-length")).toBe(String(b1.length));
    expect(whole.headers.get("etag")).toBe(b1Etag);
    expect(await whole.text()).toBe("");

    const part = await read("b1:read", { method: "HEAD", headers: { range: "bytes=10-19" } });
    expect(part.status).toBe(206);
    expect(part.headers.get("content-range")).toBe(`bytes 10-19/${b1.length}`);
    expect(part.headers.get("content-length")).toBe("10");
    expect(await part.text()).toBe("");
  });

  it("aborts a body whose upstream fails midway: the client sees it incomplete", async () => {
    const res = await read("b1:read?chunkBytes=16384&failAfterBytes=65536", {
      headers: { range: "bytes=100-" },
    });
    expect(res.status).toBe(206);
    expect(res.headers.get("content-length")).toBe(String(b1.length - 100));
    await expect(res.arrayBuffer()).rejects.toThrow();
  });

  it("relays an upstream that does not describe the content as a stream without a length", async () => {
    const res = await read("b1:read?undescribed=true", { headers: { range: "bytes=0-9" } });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-length")).toBeNull();
    expect(res.headers.get("accept-ranges")).toBeNull();
    expect((await bytesOf(res)).equals(b1.subarray(0, 10))).toBe(true);
  });
});

describe("conditional downloads", () => {
  it.each([b1Etag, `W/${b1Etag}`, `"other", ${b1Etag}`, "*"])(
    "answers If-None-Match %s with 304, no body and the ETag",
    async (ifNoneMatch) => {
      const res = await read("b1:read", {
        headers: { "if-none-match": ifNoneMatch, range: "bytes=0-9" },
      });
      expect(res.status).toBe(304);
      expect(res.headers.get("etag")).toBe(b1Etag);
      expect(res.headers.get("content-range")).toBeNull();
      expect(await res.text()).toBe("");
    },
  );

  it("sends the content when If-None-Match names another ETag", async () => {
    const res = await read("b1:read", { headers: { "if-none-match": '"other"' } });
    expect(res.status).toBe(200);
    expect((await bytesOf(res)).equals(b1)).toBe(true);
  });

  it.each([
    ["the ETag", b1Etag],
    ["the Last-Modified date", "Tue, 02 Jan 2024 03:04:05 GMT"],
  ])("honours a Range whose If-Range is %s", async (_, ifRange) => {
    const res = await read("b1:read", { headers: { range: "bytes=10-19", "if-range": ifRange } });
    expect(res.status).toBe(206);
    expect(res.headers.get("content-range")).toBe(`bytes 10-19/${b1.length}`);
    expect((await bytesOf(res)).equals(b1.subarray(10, 20))).toBe(true);
  });

  it.each([
    ["another ETag", '"other"'],
    ["a weak ETag", `W/${b1Etag}`],
    ["another date", "Wed, 03 Jan 2024 03:04:05 GMT"],
  ])("sends everything with 200 when If-Range is %s", async (_, ifRange) => {
    const res = await read("b1:read", { headers: { range: "bytes=10-19", "if-range": ifRange } });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-length")).toBe(String(b1.length));
    expect((await bytesOf(res)).equals(b1)).toBe(true);
  });

  it("sends everything to a range beyond the end whose If-Range fails", async () => {
    const res = await read("b1:read", {
      headers: { range: `bytes=${b1.length}-`, "if-range": '"other"' },
    });
    expect(res.status).toBe(200);
    expect((await bytesOf(res)).equals(b1)).toBe(true);
  });

  it.each<[string, RequestInit, number]>([
    ["a 304", { headers: { "if-none-match": "*" } }, 304],
    ["HEAD", { method: "HEAD" }, 200],
  ])("cancels the upstream call once it answers %s", async (_, init, status) => {
    const traceId = randomBytes(16).toString("hex");
    const traceparent = `00-${traceId}-${randomBytes(8).toString("hex")}-01`;
    const res = await read("large:read?chunkBytes=16384", {
      ...init,
      headers: { ...init.headers, traceparent },
    });
    expect(res.status).toBe(status);
    await expect
      .poll(() => library.logs.find((line) => line.traceId === traceId)?.code, {
        timeout: 10_000,
      })
      .toBe("canceled");
  });
});

/** One request over an HTTP/2 session; rejects when the stream is reset before its end. */
function h2Request(
  session: http2.ClientHttp2Session,
  headers: http2.OutgoingHttpHeaders,
): Promise<{ headers: http2.IncomingHttpHeaders; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const stream = session.request(headers);
    const chunks: Buffer[] = [];
    let response: http2.IncomingHttpHeaders = {};
    stream.on("response", (h) => {
      response = h;
    });
    stream.on("data", (chunk: Buffer) => chunks.push(chunk));
    stream.on("end", () => resolve({ headers: response, body: Buffer.concat(chunks) }));
    stream.on("error", reject);
  });
}

describe("ranged downloads over HTTP/2", () => {
  let session: http2.ClientHttp2Session;
  beforeAll(() => {
    session = http2.connect(gateway.url);
  });
  afterAll(() => session.close());

  it("answers a Range with 206 and exactly the bytes asked, and HEAD without a body", async () => {
    const path = "/v1/books/b1:read?chunkBytes=8192";
    const part = await h2Request(session, { ":path": path, range: "bytes=100-65635" });
    expect(part.headers[":status"]).toBe(206);
    expect(part.headers["content-length"]).toBe("65536");
    expect(part.body.equals(b1.subarray(100, 65636))).toBe(true);

    const head = await h2Request(session, { ":method": "HEAD", ":path": path });
    expect(head.headers[":status"]).toBe(200);
    expect(head.headers["content-length"]).toBe(String(b1.length));
    expect(head.body.length).toBe(0);
  });

  it.each([
    "/v1/books/b1:read?chunkBytes=16384&failAfterBytes=65536",
    // A stream of raw bytes without the download option, which has no length to fall short of.
    "/v1/books/b1:download?sizeBytes=1000000&chunkBytes=10000&failAfterBytes=500000",
  ])("resets the stream of a body whose upstream fails midway (%s)", async (path) => {
    await expect(h2Request(session, { ":path": path })).rejects.toThrow("NGHTTP2_INTERNAL_ERROR");
  });
});
