// The file service on S3 storage, against fauxqs (an S3 REST server in JavaScript that verifies
// no SigV4 signature; compose runs MinIO): uploads of several parts, ranges, resumable sessions,
// presigned download URLs, thumbnails, and nothing left in the bucket by a refused upload or a
// deleted file.
import { createHash, randomBytes } from "node:crypto";
import { CreateBucketCommand, type S3Client } from "@aws-sdk/client-s3";
import { Code } from "@connectrpc/connect";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { ThumbnailState } from "../../gen/protomesh/file/v1/file_pb.ts";
import { type FileServiceUnderTest, startFileService } from "../../test/support/file-service.ts";
import {
  adminClientOf,
  listKeys,
  type S3Server,
  startFauxqsS3,
} from "../../test/support/s3-servers.ts";
import { expectCode, type TestUser } from "../../test/support/user-service.ts";

const bucket = "files";
let s3: S3Server;
let admin: S3Client;
let svc: FileServiceUnderTest;
let alice: TestUser;

beforeAll(async () => {
  s3 = await startFauxqsS3();
  admin = adminClientOf(s3);
  await admin.send(new CreateBucketCommand({ Bucket: bucket }));
  svc = await startFileService({
    FILE_STORAGE: "s3",
    FILE_S3_BUCKET: bucket,
    FILE_S3_ENDPOINT: s3.endpoint,
    FILE_S3_FORCE_PATH_STYLE: "true",
    FILE_S3_ACCESS_KEY_ID: s3.credentials.accessKeyId,
    FILE_S3_SECRET_ACCESS_KEY: s3.credentials.secretAccessKey,
    FILE_S3_PART_SIZE_BYTES: String(5 * 1024 * 1024),
  });
  [alice] = await svc.signUp("alice");
});
afterAll(async () => {
  await svc?.close();
  admin?.destroy();
  await s3?.stop();
});

const sha256 = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex");

async function download(request: { id: string; offset?: bigint; length?: bigint }) {
  const chunks: Uint8Array[] = [];
  for await (const body of svc.connect.download(request, alice.call)) chunks.push(body.data);
  return Buffer.concat(chunks);
}

describe("the file service on S3", () => {
  it("stores an upload of several parts, and reads any range of it back", async () => {
    const content = randomBytes(12 * 1024 * 1024 + 5);
    const file = await svc.upload(alice, { filename: "big.bin" }, content, 256 * 1024);
    expect(file.sha256).toBe(sha256(content));
    expect(await listKeys(admin, bucket)).toContain(`files/${file.id}`);
    expect(sha256(await download({ id: file.id }))).toBe(sha256(content));
    const middle = await download({ id: file.id, offset: 5n * 1024n * 1024n - 10n, length: 20n });
    expect(middle.equals(content.subarray(5 * 1024 * 1024 - 10, 5 * 1024 * 1024 + 10))).toBe(true);
    const tail = await download({ id: file.id, offset: -7n });
    expect(tail.equals(content.subarray(-7))).toBe(true);
  });

  it("leaves nothing in the bucket when an upload is refused, or a file deleted", async () => {
    const before = await listKeys(admin, bucket);
    const content = randomBytes(6 * 1024 * 1024);
    await expectCode(
      svc.upload(alice, { filename: "bad.bin", sha256: "f".repeat(64) }, content),
      Code.InvalidArgument,
      /not the announced/,
    );
    expect(await listKeys(admin, bucket)).toEqual(before);
    const file = await svc.upload(alice, { filename: "gone.bin" }, content);
    await svc.connect.deleteFile({ id: file.id }, alice.call);
    expect(await listKeys(admin, bucket)).toEqual(before);
  });

  it("takes a resumable upload whose appends do not line up with parts", async () => {
    const content = randomBytes(11 * 1024 * 1024 + 1);
    const session = await svc.connect.createUploadSession(
      { metadata: { filename: "resumed.bin", sizeBytes: BigInt(content.byteLength) } },
      alice.call,
    );
    const cuts = [0, 3 * 1024 * 1024, 10 * 1024 * 1024, content.byteLength];
    let done: Awaited<ReturnType<typeof svc.connect.appendUpload>> | undefined;
    for (let i = 0; i + 1 < cuts.length; i++) {
      const [from, to] = [cuts[i] ?? 0, cuts[i + 1] ?? 0];
      done = await svc.connect.appendUpload(
        (async function* () {
          yield {
            payload: { case: "start" as const, value: { id: session.id, offset: BigInt(from) } },
          };
          for (let at = from; at < to; at += 512 * 1024) {
            yield {
              payload: {
                case: "chunk" as const,
                value: content.subarray(at, Math.min(to, at + 512 * 1024)),
              },
            };
          }
        })(),
        alice.call,
      );
    }
    expect(done?.file?.sha256).toBe(sha256(content));
    expect(sha256(await download({ id: done?.file?.id ?? "" }))).toBe(sha256(content));
  });

  it("gives a presigned URL of the bucket, which reads the file without credentials", async () => {
    const content = Buffer.from("presigned content");
    const file = await svc.upload(alice, { filename: "p.txt", contentType: "text/plain" }, content);
    // The shortest lifetime there is, which a presigned URL takes too.
    const { url } = await svc.connect.createDownloadUrl(
      { id: file.id, expiresInSeconds: 1 },
      alice.call,
    );
    expect(url.startsWith(`${s3.endpoint}/${bucket}/files/${file.id}?`)).toBe(true);
    expect(new URL(url).searchParams.get("X-Amz-Signature")).toMatch(/^[\da-f]{64}$/);
    const res = await fetch(url);
    expect(res.status).toBe(200);
    expect(Buffer.from(await res.arrayBuffer()).equals(content)).toBe(true);
  });

  it("renders thumbnails from the bucket", async () => {
    const png = await sharp({
      create: { width: 300, height: 200, channels: 3, background: "#09c" },
    })
      .png()
      .toBuffer();
    const file = await svc.upload(alice, { filename: "pic.png" }, png);
    await vi.waitFor(
      async () => {
        const now = await svc.connect.getFile({ id: file.id }, alice.call);
        expect(now.thumbnailState).toBe(ThumbnailState.READY);
      },
      { timeout: 15_000, interval: 100 },
    );
    const thumbnail = await svc.connect.getThumbnail({ id: file.id, maxSize: 30 }, alice.call);
    expect(await sharp(thumbnail.data).metadata()).toMatchObject({ width: 30, height: 20 });
    expect(await listKeys(admin, bucket)).toContain(`thumbs/${file.id}`);
  });
});
