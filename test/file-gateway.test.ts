// The file service end to end between real processes (user, file, gateway): uploads as curl and
// a browser form send them, over the limit and beyond the quota with nothing stored, a client
// that goes away mid-upload, ranged and conditional downloads, signed URLs that work without a
// token, thumbnails, and another user's file answered exactly as an unknown id.
import { createHash, randomBytes } from "node:crypto";
import { connect as connectTcp } from "node:net";
import sharp from "sharp";
import { Upload } from "tus-js-client";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { createProcessDatabases } from "./support/database.ts";
import { killAllProcesses, type StartedProcess, startProcess } from "./support/process.ts";

const maxFileBytes = 2 * 1024 * 1024;
const quotaBytes = 6 * 1024 * 1024;

let gateway: StartedProcess;
const tokens = { alice: "", bob: "", carol: "" };
const databases = createProcessDatabases();

beforeAll(async () => {
  const user = await startProcess("services/user/main.js", {
    env: { LOGIN_REQUIRE_VERIFIED_EMAIL: "false", ...(await databases.env()) },
  });
  const file = await startProcess("services/file/main.js", {
    env: {
      USER_SERVICE_URL: user.url,
      FILE_MAX_BYTES: String(maxFileBytes),
      FILE_QUOTA_BYTES: String(quotaBytes),
      ...(await databases.env()),
    },
  });
  gateway = await startProcess("gateway/main.js", {
    env: { USER_SERVICE_URL: user.url, FILE_SERVICE_URL: file.url },
  });
  for (const name of ["alice", "bob", "carol"] as const) {
    const email = `${name}-files-${process.pid}@example.com`;
    const password = "correct-horse-1";
    const headers = { "content-type": "application/json" };
    const registered = await fetch(`${gateway.url}/v1/auth/register`, {
      method: "POST",
      headers,
      body: JSON.stringify({ email, password, displayName: name }),
    });
    expect(registered.status).toBe(200);
    const login = await fetch(`${gateway.url}/v1/auth/login`, {
      method: "POST",
      headers,
      body: JSON.stringify({ email, password }),
    });
    tokens[name] = ((await login.json()) as { accessToken: string }).accessToken;
  }
});
afterAll(async () => {
  await killAllProcesses();
  await databases.dropAll();
});

const sha256 = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex");
const auth = (name: keyof typeof tokens) => ({ authorization: `Bearer ${tokens[name]}` });

interface RestFile {
  id: string;
  filename: string;
  contentType: string;
  sizeBytes: string;
  sha256: string;
  thumbnailState: string;
}

/** Uploads a raw body as curl's --data-binary does; returns the status and the JSON answer. */
async function uploadRaw(
  user: keyof typeof tokens,
  query: Record<string, string>,
  body: Uint8Array,
  contentType = "application/octet-stream",
): Promise<{ status: number; headers: Headers; body: Record<string, unknown> }> {
  const res = await fetch(`${gateway.url}/v1/files?${new URLSearchParams(query)}`, {
    method: "POST",
    headers: { ...auth(user), "content-type": contentType },
    body,
  });
  const answer = (await res.json()) as Record<string, unknown>;
  return { status: res.status, headers: res.headers, body: answer };
}

async function listFiles(user: keyof typeof tokens): Promise<RestFile[]> {
  const res = await fetch(`${gateway.url}/v1/files`, { headers: auth(user) });
  expect(res.status).toBe(200);
  return ((await res.json()) as { files?: RestFile[] }).files ?? [];
}

describe("uploading through the gateway", () => {
  it("takes a raw body with the metadata in the query, and a browser form", async () => {
    const content = randomBytes(1024 * 1024 + 3);
    const raw = await uploadRaw("alice", { "metadata.filename": "raw.bin" }, content);
    expect(raw.headers.get("x-content-type-options")).toBe("nosniff");
    expect(raw.status).toBe(200);
    expect(raw.body).toMatchObject({
      filename: "raw.bin",
      sizeBytes: String(content.byteLength),
      sha256: sha256(content),
      contentType: "application/octet-stream",
    });
    const form = new FormData();
    form.append("metadata.filename", "notes.txt");
    form.append("metadata.contentType", "text/plain");
    form.append("file", new Blob([Buffer.from("hello from a form")]), "ignored-name.txt");
    const res = await fetch(`${gateway.url}/v1/files`, {
      method: "POST",
      headers: auth("alice"),
      body: form,
    });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({
      filename: "notes.txt",
      contentType: "text/plain",
      sizeBytes: "17",
    });
  });

  it("answers 413 one byte over the limit, and beyond the quota, storing nothing", async () => {
    const over = await uploadRaw(
      "bob",
      { "metadata.filename": "big.bin" },
      randomBytes(maxFileBytes + 1),
    );
    expect(over.status).toBe(413);
    expect(over.headers.get("x-content-type-options")).toBe("nosniff");
    expect(over.body).toMatchObject({
      code: 8,
      message: expect.stringMatching(/limit of 2097152/),
    });
    const announced = await uploadRaw(
      "bob",
      { "metadata.filename": "big.bin", "metadata.sizeBytes": String(maxFileBytes + 1) },
      randomBytes(16),
    );
    expect(announced.status).toBe(413);
    for (let i = 0; i < 3; i++) {
      const ok = await uploadRaw(
        "bob",
        { "metadata.filename": `part${i}` },
        randomBytes(maxFileBytes),
      );
      expect(ok.status).toBe(200);
    }
    const full = await uploadRaw("bob", { "metadata.filename": "one-more" }, randomBytes(10));
    expect(full.status).toBe(413);
    expect(full.body.message).toMatch(/does not fit in the quota of 6291456 bytes \(0 left\)/);
    expect((await listFiles("bob")).map((f) => f.filename).sort()).toEqual([
      "part0",
      "part1",
      "part2",
    ]);
  });

  it("keeps two concurrent uploads within the quota together", async () => {
    // Four files of the largest size at once, without announcing it: room for three.
    const results = await Promise.all(
      [0, 1, 2, 3].map((i) =>
        uploadRaw("carol", { "metadata.filename": `c${i}` }, randomBytes(maxFileBytes)),
      ),
    );
    const stored = results.filter((r) => r.status === 200).length;
    expect(results.filter((r) => r.status === 413).length).toBe(4 - stored);
    expect(stored).toBe(3);
    expect((await listFiles("carol")).length).toBe(3);
  });

  it("stores nothing when the client goes away mid-upload", async () => {
    const before = await listFiles("alice");
    const { hostname, port } = new URL(gateway.url);
    const socket = connectTcp(Number(port), hostname);
    await new Promise((resolve) => socket.once("connect", resolve));
    socket.write(
      [
        "POST /v1/files?metadata.filename=cut.bin HTTP/1.1",
        `Host: ${hostname}`,
        `Authorization: Bearer ${tokens.alice}`,
        "Content-Type: application/octet-stream",
        "Content-Length: 1000000",
        "",
        "",
      ].join("\r\n"),
    );
    // A third of the body, handed to the network, then the connection goes.
    await new Promise((resolve) => socket.write(randomBytes(300_000), resolve));
    socket.destroy();
    // The file service has finished with the call once a later upload of the caller is listed.
    const after = await uploadRaw("alice", { "metadata.filename": "after.bin" }, randomBytes(10));
    expect(after.status).toBe(200);

    await vi.waitFor(async () => {
      const names = (await listFiles("alice")).map((f) => f.filename);
      expect(names).toEqual(["after.bin", ...before.map((f) => f.filename)]);
    });
  });
});

describe("a resumable upload over tus", () => {
  /** Runs a tus upload of `content` until it succeeds, or until `stopAt` bytes are sent. */
  const tus = (content: Buffer, options: { uploadUrl?: string; stopAt?: number }) =>
    new Promise<string>((resolve, reject) => {
      const upload = new Upload(content, {
        endpoint: `${gateway.url}/v1/tus/`,
        ...(options.uploadUrl ? { uploadUrl: options.uploadUrl } : {}),
        chunkSize: 512 * 1024,
        retryDelays: [],
        headers: auth("alice"),
        metadata: { filename: "tus.bin", filetype: "application/octet-stream" },
        onProgress(sent) {
          if (options.stopAt !== undefined && sent >= options.stopAt) {
            void upload.abort().then(() => resolve(upload.url ?? ""));
          }
        },
        onSuccess: () => resolve(upload.url ?? ""),
        onError: reject,
      });
      upload.start();
    });

  it("resumes after the client stops midway, into a file identical to the source", async () => {
    const content = randomBytes(maxFileBytes - 5);
    const url = await tus(content, { stopAt: 1024 * 1024 });
    const tusHead = { ...auth("alice"), "tus-resumable": "1.0.0" };
    const midway = await fetch(url, { method: "HEAD", headers: tusHead });
    const offset = Number(midway.headers.get("upload-offset"));
    expect(offset).toBeGreaterThan(0);
    expect(offset).toBeLessThan(content.byteLength);
    expect(midway.headers.get("file-id")).toBeNull();
    expect(await tus(content, { uploadUrl: url })).toBe(url);
    const done = await fetch(url, { method: "HEAD", headers: tusHead });
    expect(done.headers.get("upload-offset")).toBe(String(content.byteLength));
    const fileId = done.headers.get("file-id");
    const stored = await fetch(`${gateway.url}/v1/files/${fileId}:download`, {
      headers: auth("alice"),
    });
    expect(sha256(Buffer.from(await stored.arrayBuffer()))).toBe(sha256(content));
  });
});

describe("downloading through the gateway", () => {
  let file: RestFile;
  const content = randomBytes(100_000);

  beforeAll(async () => {
    const uploaded = await uploadRaw(
      "alice",
      { "metadata.filename": 'résumé "final".pdf' },
      Buffer.concat([Buffer.from("%PDF-1.7\n"), content]),
    );
    file = uploaded.body as unknown as RestFile;
  });

  const url = () => `${gateway.url}/v1/files/${file.id}:download`;

  it("sends the whole file with its length, type, ETag and a safe Content-Disposition", async () => {
    const res = await fetch(url(), { headers: auth("alice") });
    expect(res.status).toBe(200);
    const body = Buffer.from(await res.arrayBuffer());
    expect(body.byteLength).toBe(Number(file.sizeBytes));
    expect(sha256(body)).toBe(file.sha256);
    expect(res.headers.get("content-length")).toBe(file.sizeBytes);
    expect(res.headers.get("content-type")).toBe("application/pdf");
    expect(res.headers.get("etag")).toBe(`"${file.sha256}"`);
    expect(res.headers.get("accept-ranges")).toBe("bytes");
    expect(res.headers.get("x-content-type-options")).toBe("nosniff");
    expect(res.headers.get("content-disposition")).toBe(
      `attachment; filename="resume _final_.pdf"; filename*=UTF-8''r%C3%A9sum%C3%A9%20%22final%22.pdf`,
    );
  });

  it("answers a Range with 206, an unsatisfiable one with 416, and a known ETag with 304", async () => {
    const total = Number(file.sizeBytes);
    const whole = Buffer.from(await (await fetch(url(), { headers: auth("alice") })).arrayBuffer());
    const cases: [string, number, number][] = [
      ["bytes=0-99", 0, 100],
      ["bytes=50000-", 50_000, total],
      ["bytes=-10", total - 10, total],
    ];
    for (const [range, start, end] of cases) {
      const res = await fetch(url(), { headers: { ...auth("alice"), range } });
      expect(res.status, range).toBe(206);
      expect(res.headers.get("content-range")).toBe(`bytes ${start}-${end - 1}/${total}`);
      expect(Buffer.from(await res.arrayBuffer()).equals(whole.subarray(start, end))).toBe(true);
    }
    const beyond = await fetch(url(), { headers: { ...auth("alice"), range: `bytes=${total}-` } });
    expect(beyond.status).toBe(416);
    expect(beyond.headers.get("content-range")).toBe(`bytes */${total}`);
    const cached = await fetch(url(), {
      headers: { ...auth("alice"), "if-none-match": `"${file.sha256}"` },
    });
    expect(cached.status).toBe(304);
  });

  it("serves a signed URL without a token, and refuses it tampered", async () => {
    const made = await fetch(`${gateway.url}/v1/files/${file.id}:createDownloadUrl`, {
      method: "POST",
      headers: { ...auth("alice"), "content-type": "application/json" },
      body: JSON.stringify({ expiresInSeconds: 60 }),
    });
    expect(made.status).toBe(200);
    const { url: signed } = (await made.json()) as { url: string };
    // The URL names the public gateway address; this test's gateway listens elsewhere.
    const local = new URL(signed);
    const target = `${gateway.url}${local.pathname}${local.search}`;
    const res = await fetch(target, { headers: { range: "bytes=0-8" } });
    expect(res.status).toBe(206);
    expect(await res.text()).toBe("%PDF-1.7\n");
    const tampered = new URL(target);
    tampered.searchParams.set("expires", String(Number(local.searchParams.get("expires")) + 1));
    const refused = await fetch(tampered);
    expect(refused.status).toBe(403);
    expect(await refused.json()).toMatchObject({
      message: "the download URL's signature is not valid",
    });
  });

  it("answers another user's file exactly as an unknown id, and a thumbnail of an image", async () => {
    const unknown = crypto.randomUUID();
    for (const path of ["", ":download", "/thumbnail"]) {
      const theirs = await fetch(`${gateway.url}/v1/files/${file.id}${path}`, {
        headers: auth("bob"),
      });
      const none = await fetch(`${gateway.url}/v1/files/${unknown}${path}`, {
        headers: auth("bob"),
      });
      expect(theirs.status).toBe(404);
      expect((await theirs.text()).replace(file.id, "<id>")).toBe(
        (await none.text()).replace(unknown, "<id>"),
      );
    }
    const png = await sharp({
      create: { width: 600, height: 300, channels: 3, background: "#c33" },
    })
      .png()
      .toBuffer();
    const image = (await uploadRaw("alice", { "metadata.filename": "red.png" }, png))
      .body as unknown as RestFile;
    expect(image.thumbnailState).toBe("THUMBNAIL_STATE_PENDING");
    const thumbnail = await vi.waitFor(
      async () => {
        const res = await fetch(`${gateway.url}/v1/files/${image.id}/thumbnail?maxSize=100`, {
          headers: auth("alice"),
        });
        expect(res.status).toBe(200);
        return res;
      },
      { timeout: 15_000, interval: 100 },
    );
    expect(thumbnail.headers.get("content-type")).toBe("image/png");
    const meta = await sharp(Buffer.from(await thumbnail.arrayBuffer())).metadata();
    expect({ width: meta.width, height: meta.height }).toEqual({ width: 100, height: 50 });
  });
});
