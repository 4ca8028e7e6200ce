import { createHash, randomBytes } from "node:crypto";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { FileStorage } from "./storage.ts";

/** A fresh, empty store for one test, and a view of everything it holds. */
export interface StorageUnderTest {
  readonly storage: FileStorage;
  /** The name of every file or object the store holds, its own temporary ones included. */
  listAll(): Promise<string[]>;
}

/** What the contract runs against, and what the server behind the store cannot do. */
export interface StorageContractOptions {
  /** Opens a fresh, empty store; one that uploads in parts uses parts of 5 MiB. */
  open(): Promise<StorageUnderTest>;
  /** Why the server cannot abort a multipart upload, when it cannot: those cases check less. */
  readonly noMultipartAbort?: string;
  /** Why the server answers `bytes=0-0` with more than one byte, when it does: skipped. */
  readonly noFirstByteRange?: string;
  /**
   * What presigned URLs do: "none" (the store cannot sign), "disposition" (a download with the
   * asked Content-Disposition), or why the server ignores the disposition asked for.
   */
  readonly presigned: "none" | "disposition" | { readonly ignoresDisposition: string };
}

const MiB = 1024 * 1024;

/** Defines the suite every FileStorage adapter passes, as `describe(name)`. */
export function defineStorageContract(name: string, options: StorageContractOptions): void {
  describe(name, () => {
    let store: StorageUnderTest;
    let storage: FileStorage;
    beforeEach(async () => {
      store = await options.open();
      storage = store.storage;
    });
    afterEach(async () => {
      await storage.close();
    });

    defineWriteCases(() => store);
    defineReadCases(() => store, options.noFirstByteRange);
    defineStagingCases(() => store);
    defineAbortCases(() => store, options.noMultipartAbort);
    definePresignedCases(() => store, options.presigned);
  });
}

function defineWriteCases(current: () => StorageUnderTest): void {
  it("makes committed content of several parts readable byte for byte, and only then", async () => {
    const { storage, listAll } = current();
    const content = randomBytes(12 * MiB + 12345);
    const write = await storage.create("files/big");
    for (const chunk of chunksOf(content, 256 * 1024)) await write.write(chunk);
    expect(await storage.size("files/big")).toBeUndefined();
    await write.commit();
    expect(await storage.size("files/big")).toBe(content.length);
    const read = await readAll(storage.read("files/big", { offset: 0, length: content.length }));
    expect(sha256(read)).toBe(sha256(content));
    expect(await listAll()).toEqual(["files/big"]);
  });

  it("commits empty content as a key of size 0", async () => {
    const { storage } = current();
    const write = await storage.create("files/empty");
    await write.commit();
    expect(await storage.size("files/empty")).toBe(0);
  });

  it("says a key that holds nothing has no size, and deleting it twice is not an error", async () => {
    const { storage, listAll } = current();
    expect(await storage.size("files/none")).toBeUndefined();
    await store(storage, "files/once", randomBytes(1000));
    await storage.delete("files/once");
    expect(await storage.size("files/once")).toBeUndefined();
    await storage.delete("files/once");
    expect(await listAll()).toEqual([]);
  });
}

function defineReadCases(current: () => StorageUnderTest, noFirstByteRange?: string): void {
  const content = randomBytes(300 * 1024);

  it("reads the first bytes, the middle, the last byte and the whole", async () => {
    const { storage } = current();
    await store(storage, "files/ranged", content);
    const ranges = [
      { offset: 0, length: 2 },
      { offset: 1000, length: 100_000 },
      { offset: content.length - 1, length: 1 },
      { offset: 0, length: content.length },
    ];
    for (const range of ranges) {
      const read = await readAll(storage.read("files/ranged", range));
      expect(read.equals(content.subarray(range.offset, range.offset + range.length))).toBe(true);
    }
    expect(await readAll(storage.read("files/ranged", { offset: 10, length: 0 }))).toHaveLength(0);
  });

  const firstByte = noFirstByteRange === undefined ? it : it.skip;
  const why = noFirstByteRange === undefined ? "" : ` (skipped: ${noFirstByteRange})`;
  firstByte(`reads the first byte alone${why}`, async () => {
    const { storage } = current();
    await store(storage, "files/first", content);
    const read = await readAll(storage.read("files/first", { offset: 0, length: 1 }));
    expect(read.equals(content.subarray(0, 1))).toBe(true);
  });

  it("releases a read ended early: sixty of them, then a whole read still works", async () => {
    const { storage } = current();
    await store(storage, "files/early", content);
    for (let i = 0; i < 60; i++) {
      for await (const chunk of storage.read("files/early", {
        offset: 0,
        length: content.length,
      })) {
        expect(chunk.byteLength).toBeGreaterThan(0);
        break;
      }
    }
    const read = await readAll(storage.read("files/early", { offset: 0, length: content.length }));
    expect(read.equals(content)).toBe(true);
  });

  it("stops a read whose signal is aborted with an error", async () => {
    const { storage } = current();
    await store(storage, "files/aborted-read", content);
    const controller = new AbortController();
    const reading = (async () => {
      for await (const _ of storage.read(
        "files/aborted-read",
        { offset: 0, length: content.length },
        controller.signal,
      )) {
        controller.abort(new Error("caller went away"));
      }
    })();
    await expect(reading).rejects.toThrow();
  });
}

function defineStagingCases(current: () => StorageUnderTest): void {
  it("completes appends whose sizes do not line up with parts into the whole content", async () => {
    const { storage, listAll } = current();
    const pieces = [randomBytes(3 * MiB), randomBytes(7 * MiB), randomBytes(1)];
    let state = await storage.staging.open("files/staged");
    expect(state.size).toBe(0);
    for (const piece of pieces) {
      const result = await storage.staging.append("files/staged", state, source(piece));
      expect(result.error).toBeUndefined();
      expect(result.state.size).toBe(state.size + piece.length);
      state = result.state;
    }
    expect(await storage.size("files/staged")).toBeUndefined();
    await storage.staging.complete("files/staged", state);
    const whole = Buffer.concat(pieces);
    expect(await storage.size("files/staged")).toBe(whole.length);
    const read = await readAll(storage.read("files/staged", { offset: 0, length: whole.length }));
    expect(sha256(read)).toBe(sha256(whole));
    expect(await listAll()).toEqual(["files/staged"]);
  });

  it("keeps what an append took before its content threw, and says why it stopped", async () => {
    const { storage } = current();
    const taken = randomBytes(6 * MiB + 7);
    const rest = randomBytes(MiB);
    const failure = new Error("client went away");
    async function* failing() {
      yield* chunksOf(taken, 512 * 1024);
      throw failure;
    }
    const opened = await storage.staging.open("files/interrupted");
    const cut = await storage.staging.append("files/interrupted", opened, failing());
    expect(cut.error).toBe(failure);
    expect(cut.state.size).toBe(taken.length);
    const resumed = await storage.staging.append("files/interrupted", cut.state, source(rest));
    await storage.staging.complete("files/interrupted", resumed.state);
    const whole = Buffer.concat([taken, rest]);
    const read = await readAll(
      storage.read("files/interrupted", { offset: 0, length: whole.length }),
    );
    expect(sha256(read)).toBe(sha256(whole));
  });

  it("completes an empty stage into a key of size 0", async () => {
    const { storage } = current();
    const state = await storage.staging.open("files/empty-stage");
    await storage.staging.complete("files/empty-stage", state);
    expect(await storage.size("files/empty-stage")).toBe(0);
  });

  it("discards a stage smaller than a part, leaving nothing; twice is not an error", async () => {
    const { storage, listAll } = current();
    const opened = await storage.staging.open("files/discarded");
    const { state } = await storage.staging.append(
      "files/discarded",
      opened,
      source(randomBytes(MiB)),
    );
    await storage.staging.discard("files/discarded", state);
    await storage.staging.discard("files/discarded", state);
    expect(await storage.size("files/discarded")).toBeUndefined();
    expect(await listAll()).toEqual([]);
  });
}

function defineAbortCases(current: () => StorageUnderTest, noMultipartAbort?: string): void {
  it("leaves nothing behind an aborted write", async () => {
    const { storage, listAll } = current();
    const write = await storage.create("files/aborted");
    await write.write(randomBytes(100_000));
    await write.abort();
    expect(await storage.size("files/aborted")).toBeUndefined();
    expect(await listAll()).toEqual([]);
  });

  // Without AbortMultipartUpload the parts stay on the server: what is left to check is that
  // the store says the abort failed, and that nothing appears under the key.
  const aborts = noMultipartAbort === undefined;
  const partsLeft = aborts ? "" : `, and says so (its parts stay: ${noMultipartAbort})`;

  it(`leaves nothing under the key of an aborted write of several parts${partsLeft}`, async () => {
    const { storage, listAll } = current();
    const write = await storage.create("files/aborted-big");
    for (const chunk of chunksOf(randomBytes(11 * MiB), 256 * 1024)) await write.write(chunk);
    if (aborts) await write.abort();
    else await expect(write.abort()).rejects.toThrow();
    expect(await storage.size("files/aborted-big")).toBeUndefined();
    expect(await listAll()).toEqual([]);
  });

  it(`discards a stage of several parts, leaving nothing under the key${partsLeft}`, async () => {
    const { storage, listAll } = current();
    const opened = await storage.staging.open("files/discarded-big");
    const { state } = await storage.staging.append(
      "files/discarded-big",
      opened,
      source(randomBytes(10 * MiB)),
    );
    if (aborts) {
      await storage.staging.discard("files/discarded-big", state);
      await storage.staging.discard("files/discarded-big", state);
      // Two whole parts and no tail: only the aborted upload can make completing fail.
      await expect(storage.staging.complete("files/discarded-big", state)).rejects.toThrow();
    } else {
      await expect(storage.staging.discard("files/discarded-big", state)).rejects.toThrow();
    }
    expect(await storage.size("files/discarded-big")).toBeUndefined();
    expect(await listAll()).toEqual([]);
  });
}

function definePresignedCases(
  current: () => StorageUnderTest,
  presigned: StorageContractOptions["presigned"],
): void {
  const download = {
    expiresAt: new Date(Date.now() + 10 * 60 * 1000),
    contentDisposition: 'attachment; filename="report.pdf"',
    contentType: "application/pdf",
  };
  if (presigned === "none") {
    it("has no presigned URL to give", async () => {
      const { storage } = current();
      await store(storage, "files/unsigned", randomBytes(10));
      expect(await storage.presignedUrl("files/unsigned", download)).toBeUndefined();
    });
    return;
  }
  const ignored = presigned === "disposition" ? undefined : presigned.ignoresDisposition;
  const title =
    ignored === undefined
      ? "gives a presigned URL that downloads the content with the asked disposition and type"
      : `gives a presigned URL that downloads the content (the disposition is not checked: ${ignored})`;
  it(title, async () => {
    const { storage } = current();
    const content = randomBytes(50_000);
    await store(storage, "files/signed", content);
    const url = await storage.presignedUrl("files/signed", download);
    expect(url).toBeDefined();
    const response = await fetch(url as string);
    expect(response.status).toBe(200);
    expect(Buffer.from(await response.arrayBuffer()).equals(content)).toBe(true);
    if (ignored === undefined) {
      expect(response.headers.get("content-disposition")).toBe(download.contentDisposition);
      expect(response.headers.get("content-type")).toBe(download.contentType);
    }
  });
}

/** Stores `content` under `key` through a pending write. */
async function store(storage: FileStorage, key: string, content: Uint8Array): Promise<void> {
  const write = await storage.create(key);
  for (const chunk of chunksOf(content, 64 * 1024)) await write.write(chunk);
  await write.commit();
}

function* chunksOf(content: Uint8Array, size: number): Generator<Uint8Array> {
  for (let at = 0; at < content.length; at += size) yield content.subarray(at, at + size);
}

async function* source(content: Uint8Array): AsyncGenerator<Uint8Array> {
  yield* chunksOf(content, 256 * 1024);
}

async function readAll(chunks: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Uint8Array[] = [];
  for await (const chunk of chunks) parts.push(chunk);
  return Buffer.concat(parts);
}

function sha256(content: Uint8Array): string {
  return createHash("sha256").update(content).digest("hex");
}
