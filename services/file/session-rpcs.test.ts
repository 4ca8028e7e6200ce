// Resumable uploads natively: a session's content arrives over several AppendUpload calls, one
// cut midway keeps what arrived, the offset is checked, and a complete session is a file.
import { createHash, randomBytes } from "node:crypto";
import { readdir, stat } from "node:fs/promises";
import { join } from "node:path";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { beforeAll, describe, expect, it, vi } from "vitest";
import type { AppendUploadRequestSchema } from "../../gen/protomesh/file/v1/file_pb.ts";
import { useFileService } from "../../test/support/file-service.ts";
import { expectCode, type TestUser } from "../../test/support/user-service.ts";

const svc = useFileService({ FILE_QUOTA_BYTES: String(4 * 1024 * 1024) });
let alice: TestUser;
let bob: TestUser;

beforeAll(async () => {
  [alice, bob] = await svc.signUp("alice", "bob");
});

const sha256 = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex");

/**
 * The messages of an append: where it starts, then the content in 64 KiB chunks. With `cut`,
 * the stream fails once `cut.after` bytes are out and `cut.arrived()` says the service has them.
 */
async function* appendMessages(
  id: string,
  offset: number,
  content: Uint8Array,
  cut?: { after: number; arrived: () => Promise<boolean> },
): AsyncGenerator<MessageInitShape<typeof AppendUploadRequestSchema>> {
  yield { payload: { case: "start", value: { id, offset: BigInt(offset) } } };
  for (let at = 0; at < content.byteLength; at += 64 * 1024) {
    if (cut !== undefined && at >= cut.after) {
      await vi.waitFor(async () => expect(await cut.arrived()).toBe(true), { timeout: 10_000 });
      throw new Error("the network went down");
    }
    yield { payload: { case: "chunk", value: content.subarray(at, at + 64 * 1024) } };
  }
}

/** How many bytes the local storage has staged, over all sessions. */
async function stagedBytes(): Promise<number> {
  const dir = join(svc.dataDir, "files", ".staging");
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  const sizes = await Promise.all(
    entries
      .filter((e) => e.isFile())
      .map(async (e) => (await stat(join(e.parentPath, e.name))).size),
  );
  return sizes.reduce((a, b) => a + b, 0);
}

const append = (user: TestUser, id: string, offset: number, content: Uint8Array) =>
  svc.connect.appendUpload(appendMessages(id, offset, content), user.call);

describe("an upload session", () => {
  it("takes its content over several appends and becomes a file when the last byte arrives", async () => {
    const content = randomBytes(1024 * 1024 + 123);
    const session = await svc.connect.createUploadSession(
      { metadata: { filename: "big.bin", sizeBytes: BigInt(content.byteLength) } },
      alice.call,
    );
    expect(session).toMatchObject({ filename: "big.bin", offset: 0n });
    const first = await append(alice, session.id, 0, content.subarray(0, 300_000));
    expect(first.offset).toBe(300_000n);
    expect(first.file).toBeUndefined();
    expect((await svc.connect.getUploadSession({ id: session.id }, alice.call)).offset).toBe(
      300_000n,
    );
    const done = await append(alice, session.id, 300_000, content.subarray(300_000));
    expect(done.offset).toBe(BigInt(content.byteLength));
    expect(done.file).toMatchObject({
      filename: "big.bin",
      sizeBytes: BigInt(content.byteLength),
      sha256: sha256(content),
    });
    const chunks: Uint8Array[] = [];
    for await (const body of svc.connect.download({ id: done.file?.id ?? "" }, alice.call)) {
      chunks.push(body.data);
    }
    expect(sha256(Buffer.concat(chunks))).toBe(sha256(content));
    // A client that resumes afterwards learns that it is complete.
    const again = await svc.connect.getUploadSession({ id: session.id }, alice.call);
    expect(again.file?.id).toBe(done.file?.id);
  });

  it("keeps what arrived before an append was cut, and resumes from there", async () => {
    const content = randomBytes(700_000);
    const session = await svc.connect.createUploadSession(
      { metadata: { filename: "cut.bin", sizeBytes: 700_000n } },
      alice.call,
    );
    const staged = await stagedBytes();
    const cut = {
      after: 256 * 1024,
      arrived: async () => (await stagedBytes()) >= staged + 256 * 1024,
    };
    await expect(
      svc.connect.appendUpload(appendMessages(session.id, 0, content, cut), alice.call),
    ).rejects.toThrow();
    const { offset } = await vi.waitFor(async () => {
      const now = await svc.connect.getUploadSession({ id: session.id }, alice.call);
      expect(now.offset).toBe(256n * 1024n);
      return now;
    });
    const done = await append(alice, session.id, Number(offset), content.subarray(Number(offset)));
    expect(done.file?.sha256).toBe(sha256(content));
  });

  it("refuses an append at another offset than its own, and content beyond its size", async () => {
    const session = await svc.connect.createUploadSession(
      { metadata: { filename: "x.bin", sizeBytes: 10n } },
      alice.call,
    );
    await expectCode(
      append(alice, session.id, 5, Buffer.from("hello")),
      Code.FailedPrecondition,
      /continues at offset 0, not 5/,
    );
    await expectCode(
      append(alice, session.id, 0, Buffer.from("hello world!")),
      Code.InvalidArgument,
      /longer than the session's 10 remaining bytes/,
    );
    // What fitted was kept.
    const { offset } = await svc.connect.getUploadSession({ id: session.id }, alice.call);
    expect(offset).toBe(10n);
  });

  it("needs a size, counts it against the quota from the start, and gives it back when cancelled", async () => {
    await expectCode(
      svc.connect.createUploadSession({ metadata: { filename: "n.bin" } }, bob.call),
      Code.InvalidArgument,
      /size_bytes is required/,
    );
    const big = await svc.connect.createUploadSession(
      { metadata: { filename: "a.bin", sizeBytes: 3n * 1024n * 1024n } },
      bob.call,
    );
    await expectCode(
      svc.connect.createUploadSession(
        { metadata: { filename: "b.bin", sizeBytes: 2n * 1024n * 1024n } },
        bob.call,
      ),
      Code.ResourceExhausted,
      /does not fit in the quota/,
    );
    await svc.connect.cancelUploadSession({ id: big.id }, bob.call);
    await svc.connect.cancelUploadSession({ id: big.id }, bob.call);
    await expectCode(
      svc.connect.getUploadSession({ id: big.id }, bob.call),
      Code.NotFound,
      /not found/,
    );
    const after = await svc.connect.createUploadSession(
      { metadata: { filename: "b.bin", sizeBytes: 2n * 1024n * 1024n } },
      bob.call,
    );
    expect(after.offset).toBe(0n);
  });

  it("of an empty file is a file at once, as tus clients send no append for it", async () => {
    const session = await svc.connect.createUploadSession(
      { metadata: { filename: "empty.txt", contentType: "text/plain", sizeBytes: 0n } },
      alice.call,
    );
    expect(session.file).toMatchObject({ filename: "empty.txt", sizeBytes: 0n });
    expect(session.file?.sha256).toBe(sha256(Buffer.alloc(0)));
  });

  it("cannot be cancelled while an append holds it, and answers a finished append's retry", async () => {
    const session = await svc.connect.createUploadSession(
      { metadata: { filename: "held.bin", sizeBytes: 6n } },
      alice.call,
    );
    let release = () => {};
    const released = new Promise<void>((resolve) => {
      release = resolve;
    });
    const appending = svc.connect.appendUpload(
      (async function* () {
        yield { payload: { case: "start" as const, value: { id: session.id, offset: 0n } } };
        yield { payload: { case: "chunk" as const, value: Buffer.from("abc") } };
        await released;
        yield { payload: { case: "chunk" as const, value: Buffer.from("def") } };
      })(),
      alice.call,
    );
    // Once the append holds the session (as the service's database says)...
    await vi.waitFor(async () => {
      const [row] = await svc.service.db
        .fork()
        .execute<{ held: boolean }[]>(
          "select appending_until is not null as held from upload_session where id = ?",
          [session.id],
        );
      expect(row?.held).toBe(true);
    });
    await expectCode(
      svc.connect.cancelUploadSession({ id: session.id }, alice.call),
      Code.FailedPrecondition,
      /an append to the session is under way/,
    );
    release();
    const done = await appending;
    expect(done.file?.sha256).toBe(sha256(Buffer.from("abcdef")));
    // A client that lost that answer and appends again at the end gets the same file.
    const again = await append(alice, session.id, 6, Buffer.alloc(0));
    expect(again.file?.id).toBe(done.file?.id);
  });

  it("is NotFound to another user, as an unknown id is", async () => {
    const session = await svc.connect.createUploadSession(
      { metadata: { filename: "mine.bin", sizeBytes: 4n } },
      alice.call,
    );
    await expectCode(
      svc.connect.getUploadSession({ id: session.id }, bob.call),
      Code.NotFound,
      new RegExp(`upload session ${session.id} not found`),
    );
    await expectCode(append(bob, session.id, 0, Buffer.from("evil")), Code.NotFound, /not found/);
    await svc.connect.cancelUploadSession({ id: session.id }, bob.call);
    expect((await svc.connect.getUploadSession({ id: session.id }, alice.call)).offset).toBe(0n);
  });
});
