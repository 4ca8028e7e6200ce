// The gateway's tus 1.0 endpoint between real processes: the real user service for tokens, a
// gateway process, and the real tus-js-client. The file service is a test double (in this
// process, served as a real Connect server over HTTP/2) whose upload sessions live in memory,
// so that the test can read back what arrived and how each AppendUpload stream ended.
import { createHash, randomBytes, randomUUID } from "node:crypto";
import http2 from "node:http2";
import net from "node:net";
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import {
  Code,
  ConnectError,
  createContextKey,
  createContextValues,
  type ServiceImpl,
} from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { Upload } from "tus-js-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  FileService,
  type UploadSession,
  UploadSessionSchema,
} from "../gen/protomesh/file/v1/file_pb.ts";
import { killAllProcesses, type StartedProcess, startProcess } from "./support/process.ts";

const maxUploadBytes = 16 * 1024 * 1024;
// Below the gateway's limit: a larger session is the file service's to refuse.
const quotaBytes = 12 * 1024 * 1024;
const uploadsPerMinute = 5;
const appOrigin = "https://app.example.com";

/** One AppendUpload stream the test double served: where it started and what it carried. */
interface AppendRecord {
  readonly id: string;
  readonly start: number;
  received: number;
  /** The HTTP/2 stream the call came on. */
  readonly stream: http2.ServerHttp2Stream;
}

/** Whether an append's HTTP/2 stream is still open. */
function isOpen(append: AppendRecord | undefined): boolean {
  return append === undefined || !append.stream.closed;
}

const streamKey = createContextKey<http2.ServerHttp2Stream | undefined>(undefined);

/** One upload session of the test double, with every byte it received. */
interface StoredSession {
  readonly session: UploadSession;
  readonly chunks: Buffer[];
}

/**
 * The file service test double: the four upload-session RPCs in memory, checking the offset,
 * the size and a quota as the contract says, and keeping the bytes an append received even when its
 * stream fails. Every other RPC answers Unimplemented.
 */
function createFileServiceTestDouble() {
  const sessions = new Map<string, StoredSession>();
  const appends: AppendRecord[] = [];
  const find = (id: string) => {
    const stored = sessions.get(id);
    if (stored === undefined) throw new ConnectError(`no upload session ${id}`, Code.NotFound);
    return stored;
  };
  const impl: Partial<ServiceImpl<typeof FileService>> = {
    createUploadSession({ metadata }) {
      if (metadata?.sizeBytes === undefined) {
        throw new ConnectError("metadata.size_bytes is required", Code.InvalidArgument);
      }
      if (metadata.sizeBytes > quotaBytes) {
        throw new ConnectError("the upload would exceed your quota", Code.ResourceExhausted);
      }
      const session = create(UploadSessionSchema, {
        id: randomUUID(),
        filename: metadata.filename,
        contentType: metadata.contentType,
        sizeBytes: metadata.sizeBytes,
        expireTime: timestampFromDate(new Date(Date.now() + 86_400_000)),
      });
      sessions.set(session.id, { session, chunks: [] });
      return session;
    },
    getUploadSession: ({ id }) => find(id).session,
    async appendUpload(requests, ctx) {
      let stored: StoredSession | undefined;
      let record: AppendRecord | undefined;
      // Each chunk is kept as it arrives, whatever ends the stream later.
      for await (const { payload } of requests) {
        if (stored === undefined || record === undefined) {
          if (payload.case !== "start") {
            throw new ConnectError("the first message must be start", Code.InvalidArgument);
          }
          stored = find(payload.value.id);
          if (payload.value.offset !== stored.session.offset) {
            throw new ConnectError(
              `the upload continues at ${stored.session.offset}, not ${payload.value.offset}`,
              Code.FailedPrecondition,
            );
          }
          const start = Number(payload.value.offset);
          const stream = ctx.values.get(streamKey);
          if (stream === undefined) throw new Error("the test double serves HTTP/2 only");
          record = { id: stored.session.id, start, received: 0, stream };
          appends.push(record);
          continue;
        }
        if (payload.case !== "chunk") {
          throw new ConnectError("start must come only first", Code.InvalidArgument);
        }
        const { session } = stored;
        if (session.offset + BigInt(payload.value.byteLength) > session.sizeBytes) {
          throw new ConnectError("content beyond the announced size", Code.InvalidArgument);
        }
        stored.chunks.push(Buffer.from(payload.value));
        session.offset += BigInt(payload.value.byteLength);
        record.received += payload.value.byteLength;
      }
      if (stored === undefined) {
        throw new ConnectError("the stream carried no start", Code.InvalidArgument);
      }
      return stored.session;
    },
    cancelUploadSession({ id }) {
      sessions.delete(id);
      return {};
    },
  };
  return {
    impl,
    appends,
    /** The session with `id`, if it still exists. */
    session: (id: string) => sessions.get(id)?.session,
    /** The sha256 of the bytes the session with `id` received. */
    sha256: (id: string) => sha256(Buffer.concat(find(id).chunks)),
  };
}

// How long to wait for what another process does, on a machine that may be busy.
const patience = { timeout: 15_000 };

const sha256 = (bytes: Buffer) => createHash("sha256").update(bytes).digest("hex");

/**
 * A TCP proxy in front of the gateway: forwards what clients send up to `limit` bytes and drops
 * the rest, until cut() drops every connection; connections after that pass untouched.
 * close() drops the connections too, kept-alive ones included.
 */
async function startCuttingProxy(targetPort: number, limit: number) {
  let forwarded = 0;
  let cut = false;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(targetPort, "127.0.0.1");
    const limited = !cut;
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on("error", () => {});
      socket.on("close", () => {
        sockets.delete(socket);
        client.destroy();
        upstream.destroy();
      });
    }
    client.on("data", (chunk: Buffer) => {
      const room = limited ? Math.max(0, limit - forwarded) : chunk.length;
      forwarded += Math.min(room, chunk.length);
      if (room > 0) upstream.write(chunk.subarray(0, room));
    });
    upstream.pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    cut() {
      cut = true;
      for (const socket of sockets) socket.destroy();
    },
    close() {
      for (const socket of sockets) socket.destroy();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

type UploadOptions = ConstructorParameters<typeof Upload>[1];
type UrlStorage = NonNullable<UploadOptions["urlStorage"]>;

/** Where a browser tab would keep its upload URLs (localStorage), in memory. */
function createMemoryUrlStorage(): UrlStorage {
  const uploads = new Map<string, Awaited<ReturnType<UrlStorage["findAllUploads"]>>[number]>();
  return {
    findAllUploads: async () => [...uploads.values()],
    findUploadsByFingerprint: async (fingerprint) =>
      [...uploads.entries()]
        .filter(([key]) => key.startsWith(`tus::${fingerprint}::`))
        .map(([, upload]) => upload),
    removeUpload: async (key) => {
      uploads.delete(key);
    },
    addUpload: async (fingerprint, upload) => {
      const key = `tus::${fingerprint}::${uploads.size}`;
      uploads.set(key, { ...upload, urlStorageKey: key });
      return key;
    },
  };
}

/** Runs an upload to its end: resolves with its URL, rejects with the client's error. */
function runUpload(upload: Upload): Promise<string> {
  return new Promise((resolve, reject) => {
    upload.options.onSuccess = () => resolve(upload.url ?? "");
    upload.options.onError = reject;
    upload.start();
  });
}

let user: StartedProcess;
let gateway: StartedProcess;
let fileServer: http2.Http2Server;
const files = createFileServiceTestDouble();

beforeAll(async () => {
  // Cleartext HTTP/2, as the gateway calls its upstreams; without a health service, which the
  // gateway then takes as serving.
  fileServer = http2.createServer(
    connectNodeAdapter({
      routes: (router) => router.service(FileService, files.impl),
      contextValues: (req) =>
        createContextValues().set(streamKey, "stream" in req ? req.stream : undefined),
    }),
  );
  await new Promise<void>((resolve) => fileServer.listen(0, "127.0.0.1", resolve));
  const filePort = (fileServer.address() as net.AddressInfo).port;
  user = await startProcess("services/user/main.js", {
    env: { LOGIN_REQUIRE_VERIFIED_EMAIL: "false" },
  });
  gateway = await startProcess("gateway/main.js", {
    env: {
      USER_SERVICE_URL: user.url,
      FILE_SERVICE_URL: `http://127.0.0.1:${filePort}`,
      MAX_UPLOAD_BYTES: String(maxUploadBytes),
      CORS_ORIGINS: appOrigin,
      RATE_LIMITS: `auth=off,upload=${uploadsPerMinute}/1m`,
      RATE_LIMIT_ACCOUNT: "off",
    },
  });
});
afterAll(async () => {
  await killAllProcesses();
  await new Promise((resolve) => fileServer.close(resolve));
});

/** A new account's bearer token: each test gets its own upload rate limit. */
async function signIn(): Promise<string> {
  const email = `tus-${randomUUID()}@example.com`;
  const password = "correct-horse-1";
  const post = (path: string, body: unknown) =>
    fetch(`${gateway.url}${path}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });
  expect((await post("/v1/auth/register", { email, password, displayName: "Ada" })).status).toBe(
    200,
  );
  const login = await post("/v1/auth/login", { email, password });
  expect(login.status).toBe(200);
  const { accessToken } = (await login.json()) as { accessToken: string };
  return `Bearer ${accessToken}`;
}

const tus = { "tus-resumable": "1.0.0" };
const b64 = (text: string) => Buffer.from(text).toString("base64");

/** Creates an upload of `size` bytes with a plain request; resolves with its URL. */
async function createUpload(authorization: string, size: number): Promise<string> {
  const res = await fetch(`${gateway.url}/v1/tus/`, {
    method: "POST",
    headers: { ...tus, authorization, "upload-length": String(size) },
  });
  expect(res.status).toBe(201);
  return new URL(res.headers.get("location") ?? "", gateway.url).toString();
}

/** Sends `body` to an upload from `offset` with a plain request. */
function patchUpload(
  url: string,
  authorization: string,
  offset: number,
  body: string,
  contentType = "application/offset+octet-stream",
): Promise<Response> {
  return fetch(url, {
    method: "PATCH",
    headers: {
      ...tus,
      authorization,
      "content-type": contentType,
      "upload-offset": String(offset),
    },
    body,
  });
}

const idOf = (url: string) => new URL(url).pathname.split("/").pop() ?? "";

describe("tus uploads with tus-js-client", () => {
  it("uploads a whole file, which the file service receives byte for byte", async () => {
    const authorization = await signIn();
    const content = randomBytes(3 * 1024 * 1024 + 11);
    const url = await runUpload(
      new Upload(content, {
        endpoint: `${gateway.url}/v1/tus/`,
        headers: { authorization },
        metadata: { filename: "report.pdf", filetype: "application/pdf" },
        // Four PATCH requests, each from the offset the last one answered.
        chunkSize: 1024 * 1024,
        retryDelays: null,
      }),
    );
    expect(url).toMatch(new RegExp(`^${gateway.url}/v1/tus/[0-9a-f-]{36}$`));
    const id = idOf(url);
    expect(files.appends.filter((a) => a.id === id).map((a) => a.start)).toEqual([
      0,
      1024 * 1024,
      2 * 1024 * 1024,
      3 * 1024 * 1024,
    ]);
    expect(files.sha256(id)).toBe(sha256(content));
    expect(files.session(id)).toMatchObject({
      filename: "report.pdf",
      contentType: "application/pdf",
      offset: BigInt(content.length),
    });

    const head = await fetch(url, { method: "HEAD", headers: { ...tus, authorization } });
    expect(head.status).toBe(200);
    expect(head.headers.get("tus-resumable")).toBe("1.0.0");
    expect(head.headers.get("upload-offset")).toBe(String(content.length));
    expect(head.headers.get("upload-length")).toBe(String(content.length));
    expect(head.headers.get("cache-control")).toBe("no-store");
    expect(head.headers.get("upload-metadata")).toBe(
      `filename ${b64("report.pdf")},filetype ${b64("application/pdf")}`,
    );
    expect(Date.parse(head.headers.get("upload-expires") ?? "")).toBeGreaterThan(Date.now());
  });

  it("resumes an upload cut mid-way from the bytes the service kept", async () => {
    const authorization = await signIn();
    const content = randomBytes(4 * 1024 * 1024);
    const proxy = await startCuttingProxy(gateway.port, 1024 * 1024);
    const options: UploadOptions = {
      endpoint: `${proxy.url}/v1/tus/`,
      headers: { authorization },
      metadata: { filename: "big.bin" },
      urlStorage: createMemoryUrlStorage(),
      retryDelays: null,
    };
    try {
      const first = new Upload(content, options);
      const failed = runUpload(first);
      failed.catch(() => {});
      // Cut once part of the body has reached the file service.
      const reached = () => files.appends.find((a) => a.id === idOf(first.url ?? "http://x/"));
      await expect.poll(() => reached()?.received ?? 0, patience).toBeGreaterThan(0);
      proxy.cut();
      await expect(failed).rejects.toThrow();
      const id = idOf(first.url ?? "");
      // The append ends, and what arrived is kept for the resume.
      await expect.poll(() => isOpen(reached()), patience).toBe(false);
      const kept = reached()?.received ?? 0;
      expect(kept).toBeGreaterThan(0);
      expect(kept).toBeLessThan(content.length);

      const second = new Upload(content, options);
      const [previous] = await second.findPreviousUploads();
      expect(previous?.uploadUrl).toBe(first.url);
      if (previous !== undefined) second.resumeFromPreviousUpload(previous);
      await runUpload(second);

      const appends = files.appends.filter((a) => a.id === id);
      expect(appends.map(({ start, received }) => ({ start, received }))).toEqual([
        { start: 0, received: kept },
        { start: kept, received: content.length - kept },
      ]);
      expect(files.sha256(id)).toBe(sha256(content));
    } finally {
      await proxy.close();
    }
  });

  it("terminates an upload, which is then gone", async () => {
    const authorization = await signIn();
    const url = await createUpload(authorization, 100);
    await Upload.terminate(url, { headers: { authorization }, retryDelays: null });
    expect(files.session(idOf(url))).toBeUndefined();
    const head = await fetch(url, { method: "HEAD", headers: { ...tus, authorization } });
    expect(head.status).toBe(404);
  });
});

describe("the tus protocol at the gateway", () => {
  it("describes the server on OPTIONS, without a token", async () => {
    const res = await fetch(`${gateway.url}/v1/tus/`, { method: "OPTIONS" });
    expect(res.status).toBe(204);
    expect(res.headers.get("tus-version")).toBe("1.0.0");
    expect(res.headers.get("tus-extension")).toBe("creation,termination,expiration");
    expect(res.headers.get("tus-max-size")).toBe(String(maxUploadBytes));
    expect(res.headers.get("tus-resumable")).toBe("1.0.0");
  });

  it("answers a PATCH at the wrong offset 409 and keeps the upload where it was", async () => {
    const authorization = await signIn();
    const url = await createUpload(authorization, 10);
    const res = await patchUpload(url, authorization, 4, "abcdef");
    expect(res.status).toBe(409);
    expect(res.headers.get("tus-resumable")).toBe("1.0.0");
    expect(await res.json()).toMatchObject({
      code: Code.FailedPrecondition,
      message: "the upload continues at 0, not 4",
    });
    expect(files.session(idOf(url))?.offset).toBe(0n);
  });

  it("answers a PATCH with the new offset", async () => {
    const authorization = await signIn();
    const url = await createUpload(authorization, 10);
    const first = await patchUpload(url, authorization, 0, "abcd");
    expect(first.status).toBe(204);
    expect(first.headers.get("upload-offset")).toBe("4");
    expect(Date.parse(first.headers.get("upload-expires") ?? "")).toBeGreaterThan(Date.now());
    const beyond = await patchUpload(url, authorization, 4, "efghijklmnop");
    expect(beyond.status).toBe(400);
    expect(await beyond.json()).toMatchObject({ code: Code.InvalidArgument });
  });

  it("refuses a PATCH body of another media type with 415", async () => {
    const authorization = await signIn();
    const url = await createUpload(authorization, 10);
    const res = await patchUpload(url, authorization, 0, "abc", "text/plain");
    expect(res.status).toBe(415);
    expect(await res.json()).toMatchObject({ code: Code.InvalidArgument });
    expect(files.session(idOf(url))?.offset).toBe(0n);
  });

  it.each([
    ["another version", { "tus-resumable": "0.2.2" }],
    ["no version", {}],
  ])("answers a request with %s 412 and the version it speaks", async (_case, version) => {
    const res = await fetch(`${gateway.url}/v1/tus/`, {
      method: "POST",
      headers: { ...version, "upload-length": "10" },
    });
    expect(res.status).toBe(412);
    expect(res.headers.get("tus-version")).toBe("1.0.0");
    expect(res.headers.get("tus-resumable")).toBe("1.0.0");
    expect(await res.json()).toMatchObject({ code: Code.FailedPrecondition });
  });

  it("refuses a request without a token with 401", async () => {
    const res = await fetch(`${gateway.url}/v1/tus/`, {
      method: "POST",
      headers: { ...tus, "upload-length": "10" },
    });
    expect(res.status).toBe(401);
    expect(res.headers.get("www-authenticate")).toBe("Bearer");
    expect(await res.json()).toMatchObject({ code: Code.Unauthenticated });
  });

  it("takes the file's name and type from Uppy's name and type metadata", async () => {
    const authorization = await signIn();
    const res = await fetch(`${gateway.url}/v1/tus`, {
      method: "POST",
      headers: {
        ...tus,
        authorization,
        "upload-length": "10",
        "upload-metadata": `relativePath bnVsbA==,name ${b64("photo.jpg")},type ${b64("image/jpeg")}`,
      },
    });
    expect(res.status).toBe(201);
    const id = (res.headers.get("location") ?? "").replace("/v1/tus/", "");
    expect(files.session(id)).toMatchObject({ filename: "photo.jpg", contentType: "image/jpeg" });
  });

  it.each([
    ["an upload larger than Tus-Max-Size", { "upload-length": String(maxUploadBytes + 1) }, 413],
    ["an upload beyond the caller's quota", { "upload-length": String(quotaBytes + 1) }, 413],
    ["a deferred length", { "upload-defer-length": "1" }, 400],
    ["no length", {}, 400],
    ["malformed metadata", { "upload-length": "10", "upload-metadata": "filename ***" }, 400],
  ])("refuses to create %s", async (_case, headers, status) => {
    const authorization = await signIn();
    const res = await fetch(`${gateway.url}/v1/tus/`, {
      method: "POST",
      headers: { ...tus, authorization, ...headers },
    });
    expect(res.status).toBe(status);
    expect((await res.json()) as object).toHaveProperty("message");
  });

  it("answers a method tus does not define 405 with the ones it does", async () => {
    const res = await fetch(`${gateway.url}/v1/tus/${randomUUID()}`, { headers: tus });
    expect(res.status).toBe(405);
    expect(res.headers.get("allow")).toBe("DELETE, HEAD, OPTIONS, PATCH");
    expect(await res.json()).toMatchObject({ code: Code.Unimplemented });
  });

  it("answers a PATCH of an unknown upload 404, and its DELETE 204", async () => {
    const authorization = await signIn();
    const res = await fetch(`${gateway.url}/v1/tus/${randomUUID()}`, {
      method: "DELETE",
      headers: { ...tus, authorization },
    });
    // Cancelling a session that is gone succeeds: termination is idempotent.
    expect(res.status).toBe(204);
    const patch = await patchUpload(`${gateway.url}/v1/tus/${randomUUID()}`, authorization, 0, "x");
    expect(patch.status).toBe(404);
    const deeper = await patchUpload(
      `${gateway.url}/v1/tus/${randomUUID()}/x`,
      authorization,
      0,
      "x",
    );
    expect(deeper.status).toBe(404);
    expect(await deeper.json()).toMatchObject({ code: Code.NotFound });
  });

  it("keeps rate limits apart from sizes: too many uploads answer 429", async () => {
    const authorization = await signIn();
    const url = await createUpload(authorization, 100);
    const statuses: number[] = [];
    for (let i = 0; i <= uploadsPerMinute; i++) {
      statuses.push((await patchUpload(url, authorization, i, "x")).status);
    }
    expect(statuses).toEqual([...Array(uploadsPerMinute).fill(204), 429]);
  });

  it("lets browsers send tus headers and read tus answers (CORS)", async () => {
    const path = `${gateway.url}/v1/tus/${randomUUID()}`;
    const preflight = await fetch(path, {
      method: "OPTIONS",
      headers: {
        origin: appOrigin,
        "access-control-request-method": "PATCH",
        "access-control-request-headers":
          "authorization,content-type,tus-resumable,upload-offset,upload-length,upload-metadata",
      },
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get("access-control-allow-methods")).toBe(
      "DELETE, HEAD, OPTIONS, PATCH",
    );
    expect(preflight.headers.get("access-control-allow-headers")).toBe(
      "authorization, content-type, tus-resumable, upload-offset, upload-length, upload-metadata",
    );
    const answer = await fetch(`${gateway.url}/v1/tus/`, {
      method: "OPTIONS",
      headers: { origin: appOrigin },
    });
    const exposed = answer.headers.get("access-control-expose-headers")?.split(", ");
    expect(exposed).toEqual(
      expect.arrayContaining(["location", "upload-offset", "upload-length", "tus-version"]),
    );
  });
});
