// Thumbnails, rendered by the thumbnailer after an upload: ready for images, unsupported for
// other types, failed for corrupt images and decompression bombs, clamped sizes, and a file
// deleted with its thumbnail.
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { Code } from "@connectrpc/connect";
import sharp from "sharp";
import { beforeAll, describe, expect, it, vi } from "vitest";
import { type File, ThumbnailState } from "../../gen/protomesh/file/v1/file_pb.ts";
import { useFileService } from "../../test/support/file-service.ts";
import { decompressionBomb } from "../../test/support/images.ts";
import { expectCode, type TestUser } from "../../test/support/user-service.ts";

const svc = useFileService();
let alice: TestUser;

beforeAll(async () => {
  [alice] = await svc.signUp("alice");
});

/** The file once the thumbnailer is done with it. */
async function settled(file: File): Promise<File> {
  return vi.waitFor(
    async () => {
      const now = await svc.connect.getFile({ id: file.id }, alice.call);
      if (now.thumbnailState === ThumbnailState.PENDING) throw new Error("still pending");
      return now;
    },
    { timeout: 15_000, interval: 50 },
  );
}

const image = (width: number, height: number) =>
  sharp({ create: { width, height, channels: 3, background: "#3a7" } })
    .jpeg()
    .toBuffer();

describe("a thumbnail", () => {
  it("is rendered for an image, fits within max_size, and max_size is clamped to 1024", async () => {
    const file = await svc.upload(alice, { filename: "wide.jpg" }, await image(2400, 1200));
    expect(file.thumbnailState).toBe(ThumbnailState.PENDING);
    expect((await settled(file)).thumbnailState).toBe(ThumbnailState.READY);
    const small = await svc.connect.getThumbnail({ id: file.id }, alice.call);
    expect(small.contentType).toBe("image/png");
    expect(await sharp(small.data).metadata()).toMatchObject({
      format: "png",
      width: 256,
      height: 128,
    });
    const huge = await svc.connect.getThumbnail({ id: file.id, maxSize: 5000 }, alice.call);
    expect(await sharp(huge.data).metadata()).toMatchObject({ width: 1024, height: 512 });
  });

  it("is unsupported for a file that is not an image", async () => {
    const file = await svc.upload(
      alice,
      { filename: "notes.txt", contentType: "text/plain" },
      Buffer.from("hi"),
    );
    expect(file.thumbnailState).toBe(ThumbnailState.UNSUPPORTED);
    await expectCode(
      svc.connect.getThumbnail({ id: file.id }, alice.call),
      Code.FailedPrecondition,
      /not ready: its state is unsupported/,
    );
  });

  it("fails for a corrupt image and for a decompression bomb", async () => {
    const whole = await image(400, 300);
    const corrupt = await svc.upload(alice, { filename: "cut.jpg" }, whole.subarray(0, 600));
    const bomb = await readFile(await decompressionBomb());
    const bombFile = await svc.upload(alice, { filename: "bomb.png" }, bomb);
    expect((await settled(corrupt)).thumbnailState).toBe(ThumbnailState.FAILED);
    expect((await settled(bombFile)).thumbnailState).toBe(ThumbnailState.FAILED);
    await expectCode(
      svc.connect.getThumbnail({ id: bombFile.id }, alice.call),
      Code.FailedPrecondition,
      /its state is failed/,
    );
  });

  it("is deleted with its file", async () => {
    const thumbs = join(svc.dataDir, "files", "thumbs");
    const file = await settled(await svc.upload(alice, { filename: "d.jpg" }, await image(50, 50)));
    expect(await readdir(thumbs)).toContain(file.id);
    await svc.connect.deleteFile({ id: file.id }, alice.call);
    expect(await readdir(thumbs)).not.toContain(file.id);
  });
});
