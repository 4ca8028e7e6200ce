// Uploading, listing, reading, downloading and deleting files natively (Connect and gRPC): what
// is stored, what is refused with nothing stored, and what another user cannot see.
import { createHash, randomBytes } from "node:crypto";
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { Code, ConnectError } from "@connectrpc/connect";
import sharp from "sharp";
import { beforeAll, describe, expect, it, vi } from "vitest";
import { ThumbnailState } from "../../gen/protomesh/file/v1/file_pb.ts";
import {
  type FileClient,
  uploadMessages,
  useFileService,
} from "../../test/support/file-service.ts";
import { expectCode, type TestUser } from "../../test/support/user-service.ts";

const svc = useFileService();
let alice: TestUser;
let bob: TestUser;

beforeAll(async () => {
  [alice, bob] = await svc.signUp("alice", "bob");
});

const sha256 = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex");

/** The whole content of a download, and its response headers. */
async function download(
  client: FileClient,
  user: TestUser,
  request: { id: string; offset?: bigint; length?: bigint },
): Promise<{ bytes: Buffer; contentType: string; headers: Headers }> {
  let headers = new Headers();
  const chunks: Uint8Array[] = [];
  let contentType = "";
  for await (const body of client.download(request, {
    ...user.call,
    onHeader: (h) => {
      headers = h;
    },
  })) {
    if (chunks.length === 0) contentType = body.contentType;
    chunks.push(body.data);
  }
  return { bytes: Buffer.concat(chunks), contentType, headers };
}

/**
 * Every file under the local storage's root, its own temp and staging files included, but not
 * the thumbnails, which the thumbnailer renders in its own time.
 */
async function storedFiles(): Promise<string[]> {
  const root = join(svc.dataDir, "files");
  const entries = await readdir(root, { recursive: true, withFileTypes: true });
  return entries
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name))
    .filter((path) => !path.startsWith(join(root, "thumbs")));
}

describe("an upload", () => {
  it("stores the content byte for byte, with its size, digest and detected type", async () => {
    const content = randomBytes(300 * 1024 + 17);
    const file = await svc.upload(alice, { filename: "data.bin" }, content);
    expect(file).toMatchObject({
      ownerId: alice.id,
      filename: "data.bin",
      contentType: "application/octet-stream",
      sizeBytes: BigInt(content.byteLength),
      sha256: sha256(content),
      thumbnailState: ThumbnailState.UNSUPPORTED,
    });
    expect(await svc.connect.getFile({ id: file.id }, alice.call)).toEqual(file);
    const got = await download(svc.grpc, alice, { id: file.id });
    expect(sha256(got.bytes)).toBe(sha256(content));
    expect(got.contentType).toBe("application/octet-stream");
  });

  it("checks an announced size and digest, and stores nothing when they do not match", async () => {
    const before = await storedFiles();
    const content = randomBytes(1000);
    await expectCode(
      svc.upload(alice, { filename: "short.bin", sizeBytes: 999n }, content),
      Code.InvalidArgument,
      /longer than the announced 999 bytes/,
    );
    await expectCode(
      svc.upload(alice, { filename: "long.bin", sizeBytes: 1001n }, content),
      Code.InvalidArgument,
      /1000 bytes, not the announced 1001/,
    );
    await expectCode(
      svc.upload(alice, { filename: "digest.bin", sha256: "0".repeat(64) }, content),
      Code.InvalidArgument,
      /sha256 is [\da-f]{64}, not the announced 0{64}/,
    );
    const file = await svc.upload(
      alice,
      { filename: "right.bin", sizeBytes: 1000n, sha256: sha256(content).toUpperCase() },
      content,
    );
    expect(file.sha256).toBe(sha256(content));
    const { files } = await svc.connect.listFiles({}, alice.call);
    expect(files.map((f) => f.filename)).not.toContain("short.bin");
    expect(files.map((f) => f.filename)).not.toContain("digest.bin");
    expect((await storedFiles()).length).toBe(before.length + 1);
  });

  it("detects the type from the bytes, and refuses a declared image type the bytes contradict", async () => {
    const png = await sharp({
      create: { width: 8, height: 8, channels: 3, background: "#08f" },
    })
      .png()
      .toBuffer();
    const asOctets = await svc.upload(alice, { filename: "pic", contentType: "" }, png);
    expect(asOctets.contentType).toBe("image/png");
    const pdf = Buffer.from("%PDF-1.7\n1 0 obj\n<<>>\nendobj\ntrailer\n<<>>\n%%EOF\n");
    await expectCode(
      svc.upload(bob, { filename: "x.png", contentType: "image/png" }, pdf),
      Code.InvalidArgument,
      /content_type "image\/png" does not match the content, which is "application\/pdf"/,
    );
    const csv = Buffer.from("id,name\n1,Ada\n");
    const kept = await svc.upload(bob, { filename: "people.csv", contentType: "text/csv" }, csv);
    expect(kept.contentType).toBe("text/csv");
    expect((await svc.connect.listFiles({}, bob.call)).files.map((f) => f.filename)).toEqual([
      "people.csv",
    ]);
  });

  it("keeps only the last part of a filename, and refuses a NUL in it", async () => {
    const file = await svc.upload(alice, { filename: "../../etc/passwd" }, Buffer.from("x"));
    expect(file.filename).toBe("passwd");
    const windows = await svc.upload(
      alice,
      { filename: "C:\\Users\\a\\notes.txt" },
      Buffer.from("y"),
    );
    expect(windows.filename).toBe("notes.txt");
    await expectCode(
      svc.upload(alice, { filename: "a\u0000b.txt" }, Buffer.from("z")),
      Code.InvalidArgument,
      /NUL/,
    );
  });

  it("stores a zero-byte file", async () => {
    const file = await svc.upload(alice, { filename: "empty.txt", sizeBytes: 0n }, Buffer.alloc(0));
    expect(file.sizeBytes).toBe(0n);
    expect(file.sha256).toBe(sha256(Buffer.alloc(0)));
    const got = await download(svc.connect, alice, { id: file.id });
    expect(got.bytes.byteLength).toBe(0);
    expect(got.headers.get("content-range")).toBe("bytes */0");
    // Its last bytes are all of it: nothing.
    expect(
      (await download(svc.connect, alice, { id: file.id, offset: -5n })).bytes.byteLength,
    ).toBe(0);
  });

  it("needs metadata first and chunks after it", async () => {
    await expectCode(
      svc.connect.upload(
        (async function* () {
          yield { payload: { case: "chunk" as const, value: Buffer.from("x") } };
        })(),
        alice.call,
      ),
      Code.InvalidArgument,
      /first message must carry metadata/,
    );
    await expectCode(
      svc.connect.upload(
        (async function* () {
          yield* uploadMessages({ filename: "a" }, Buffer.from("x"));
          yield { payload: { case: "metadata" as const, value: { filename: "b" } } };
        })(),
        alice.call,
      ),
      Code.InvalidArgument,
      /only the first message carries metadata/,
    );
  });

  // Node's HTTP/2 client ends a stream it cancels before resetting it, so the service can only
  // be sure with an announced size; the gateway resets without ending (test/file-gateway).
  it("leaves nothing behind when a client that announced the size goes away midway", async () => {
    const before = await storedFiles();
    const filesBefore = (await svc.connect.listFiles({}, bob.call)).files.length;
    const abort = new AbortController();
    let sent = 0;
    const call = svc.connect.upload(
      (async function* () {
        yield* uploadMessages({ filename: "cut.bin", sizeBytes: 10_000_000n }, Buffer.alloc(0));
        for (;;) {
          yield { payload: { case: "chunk" as const, value: randomBytes(64 * 1024) } };
          sent += 1;
          if (sent === 20) abort.abort();
        }
      })(),
      { ...bob.call, signal: abort.signal },
    );
    await expect(call).rejects.toBeInstanceOf(ConnectError);
    await vi.waitFor(async () => expect(await storedFiles()).toEqual(before), { timeout: 10_000 });
    expect((await svc.connect.listFiles({}, bob.call)).files.length).toBe(filesBefore);
  });
});

describe("a download", () => {
  it("sends any range, describing it in its headers", async () => {
    const content = randomBytes(200_000);
    const file = await svc.upload(
      alice,
      { filename: "report.html", contentType: "text/html" },
      content,
    );
    const middle = await download(svc.connect, alice, {
      id: file.id,
      offset: 1000n,
      length: 5000n,
    });
    expect(middle.bytes.equals(content.subarray(1000, 6000))).toBe(true);
    expect(middle.headers.get("content-range")).toBe("bytes 1000-5999/200000");
    expect(middle.headers.get("etag")).toBe(`"${file.sha256}"`);
    expect(middle.headers.get("x-content-type-options")).toBe("nosniff");
    // HTML would run in the gateway's origin: it is always an attachment.
    expect(middle.headers.get("content-disposition")).toMatch(/^attachment;/);
    const tail = await download(svc.grpc, alice, { id: file.id, offset: -10n });
    expect(tail.bytes.equals(content.subarray(-10))).toBe(true);
    expect(tail.headers.get("content-range")).toBe("bytes 199990-199999/200000");
    const rest = await download(svc.connect, alice, {
      id: file.id,
      offset: 199_000n,
      length: 5000n,
    });
    expect(rest.bytes.equals(content.subarray(199_000))).toBe(true);
    const beyond = await expectCode(
      download(svc.connect, alice, { id: file.id, offset: 200_000n }),
      Code.OutOfRange,
      /beyond the file's 200000 bytes/,
    );
    expect(beyond.metadata.get("content-range")).toBe("bytes */200000");
  });
});

describe("a signed download URL", () => {
  /** DownloadSigned's request from a URL's path and query. */
  const signedRequest = (url: string) => {
    const parsed = new URL(url);
    return {
      id: parsed.pathname.split("/").at(-1) ?? "",
      expires: BigInt(parsed.searchParams.get("expires") ?? "0"),
      signature: parsed.searchParams.get("signature") ?? "",
    };
  };
  const readSigned = async (request: ReturnType<typeof signedRequest>) => {
    const chunks: Uint8Array[] = [];
    for await (const body of svc.connect.downloadSigned(request)) chunks.push(body.data);
    return Buffer.concat(chunks);
  };

  it("reads the file without a token until it expires, and not once altered", async () => {
    const content = Buffer.from("signed content");
    const file = await svc.upload(alice, { filename: "s.txt", contentType: "text/plain" }, content);
    const { url, expireTime } = await svc.connect.createDownloadUrl(
      { id: file.id, expiresInSeconds: 1 },
      alice.call,
    );
    expect(url).toMatch(new RegExp(`^http://127\\.0\\.0\\.1:8080/v1/signed-files/${file.id}\\?`));
    expect(Number(expireTime?.seconds)).toBeGreaterThan(Date.now() / 1000);
    const request = signedRequest(url);
    expect((await readSigned(request)).equals(content)).toBe(true);
    await expectCode(
      readSigned({ ...request, signature: `${request.signature.slice(0, -2)}AA` }),
      Code.PermissionDenied,
      /signature is not valid/,
    );
    await expectCode(
      readSigned({ ...request, expires: request.expires + 100n }),
      Code.PermissionDenied,
      /signature is not valid/,
    );
    await vi.waitFor(() => expectCode(readSigned(request), Code.PermissionDenied, /has expired/), {
      timeout: 5_000,
      interval: 200,
    });
    await expectCode(
      svc.connect.createDownloadUrl({ id: file.id, expiresInSeconds: -1 }, alice.call),
      Code.InvalidArgument,
      /expires_in_seconds must not be negative/,
    );
  });
});

describe("another user's file", () => {
  it("is NotFound in every RPC that takes its id, exactly as an unknown id is", async () => {
    const file = await svc.upload(alice, { filename: "secret.txt" }, Buffer.from("mine"));
    const unknown = crypto.randomUUID();
    const calls: [string, (id: string) => Promise<unknown>][] = [
      ["GetFile", (id) => svc.connect.getFile({ id }, bob.call)],
      ["Download", (id) => download(svc.connect, bob, { id })],
      ["GetThumbnail", (id) => svc.connect.getThumbnail({ id }, bob.call)],
      ["CreateDownloadUrl", (id) => svc.connect.createDownloadUrl({ id }, bob.call)],
    ];
    for (const [name, call] of calls) {
      const theirs = await expectCode(call(file.id), Code.NotFound, /not found/);
      const none = await expectCode(call(unknown), Code.NotFound, /not found/);
      expect({ name, message: theirs.rawMessage.replace(file.id, "<id>") }).toEqual({
        name,
        message: none.rawMessage.replace(unknown, "<id>"),
      });
    }
    // Deleting it answers as deleting a file that is gone, and deletes nothing.
    expect(await svc.connect.deleteFile({ id: file.id }, bob.call)).toEqual(
      await svc.connect.deleteFile({ id: unknown }, bob.call),
    );
    expect((await svc.connect.getFile({ id: file.id }, alice.call)).id).toBe(file.id);
  });
});

describe("deleting a file", () => {
  it("deletes its content, and deleting it again is fine", async () => {
    const before = await storedFiles();
    const file = await svc.upload(alice, { filename: "gone.txt" }, Buffer.from("bye"));
    expect((await storedFiles()).length).toBe(before.length + 1);
    await svc.connect.deleteFile({ id: file.id }, alice.call);
    await svc.connect.deleteFile({ id: file.id }, alice.call);
    await expectCode(svc.connect.getFile({ id: file.id }, alice.call), Code.NotFound, /not found/);
    expect(await storedFiles()).toEqual(before);
  });
});

describe("listing files", () => {
  it("pages through the caller's files, newest first", async () => {
    const [carol] = await svc.signUp("carol");
    const names = ["one", "two", "three", "four", "five"];
    for (const name of names) await svc.upload(carol, { filename: name }, Buffer.from(name));
    const seen: string[] = [];
    let pageToken = "";
    do {
      const page = await svc.connect.listFiles({ pageSize: 2, pageToken }, carol.call);
      expect(page.files.length).toBeLessThanOrEqual(2);
      seen.push(...page.files.map((f) => f.filename));
      pageToken = page.nextPageToken;
    } while (pageToken);
    expect(seen).toEqual([...names].reverse());
  });
});
