import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { Code } from "@connectrpc/connect";
import sharp, { type Sharp } from "sharp";
import { beforeAll, describe, expect, it } from "vitest";
import { decompressionBomb } from "../../test/support/images.ts";
import {
  defaultThumbnailSize,
  hasThumbnail,
  maxThumbnailSize,
  renderThumbnail,
  resizeThumbnail,
  type ThumbnailResult,
  thumbnailSizeFor,
} from "./thumbnail.ts";

const red = { r: 255, g: 0, b: 0 };
const blue = { r: 0, g: 0, b: 255 };

// Content as storage reads it: plain Uint8Array chunks, not Buffers.
async function* chunks(bytes: Uint8Array, size = 1000): AsyncGenerator<Uint8Array> {
  for (let at = 0; at < bytes.length; at += size) {
    yield new Uint8Array(bytes.subarray(at, at + size));
  }
}

function solidPng(width: number, height: number): Promise<Buffer> {
  return sharp({ create: { width, height, channels: 3, background: red } })
    .png()
    .toBuffer();
}

// Left half red, right half blue.
function twoHalves(width: number, height: number): Sharp {
  const pixels = Buffer.alloc(width * height * 3);
  for (let i = 0; i < width * height; i++) {
    const { r, g, b } = i % width < width / 2 ? red : blue;
    pixels.set([r, g, b], i * 3);
  }
  return sharp(pixels, { raw: { width, height, channels: 3 } });
}

function ready(result: ThumbnailResult): Uint8Array {
  if (result.kind !== "ready") throw new Error(`expected a thumbnail, got: ${result.reason}`);
  return result.png;
}

async function pixelAt(png: Uint8Array, x: number, y: number) {
  const { data, info } = await sharp(png).raw().toBuffer({ resolveWithObject: true });
  const at = (y * info.width + x) * info.channels;
  return { r: data[at], g: data[at + 1], b: data[at + 2] };
}

describe("renderThumbnail", () => {
  it("turns a JPEG upright as its EXIF orientation says, and drops the EXIF", async () => {
    const jpeg = await twoHalves(40, 20)
      .jpeg({ quality: 95 })
      .withMetadata({ orientation: 6 })
      .toBuffer();
    expect((await sharp(jpeg).metadata()).orientation).toBe(6);

    const png = ready(await renderThumbnail(chunks(jpeg), { maxSize: 256 }));
    const meta = await sharp(png).metadata();
    expect(meta).toMatchObject({ format: "png", width: 20, height: 40 });
    expect(meta.exif).toBeUndefined();
    expect(meta.orientation).toBeUndefined();
    // Orientation 6 is a quarter turn clockwise: the left (red) half ends on top.
    expect(await pixelAt(png, 10, 2)).toMatchObject({ r: expect.toSatisfy((v) => v > 200) });
    expect(await pixelAt(png, 10, 37)).toMatchObject({ b: expect.toSatisfy((v) => v > 200) });
  });

  it("renders each raster format that gets a thumbnail", async () => {
    for (const format of ["jpeg", "png", "webp", "gif", "avif", "tiff"] as const) {
      expect(hasThumbnail(`image/${format}`), format).toBe(true);
      const image = await twoHalves(64, 32).toFormat(format).toBuffer();
      const png = ready(await renderThumbnail(chunks(image), { maxSize: 16 }));
      expect(await sharp(png).metadata(), format).toMatchObject({ width: 16, height: 8 });
    }
  });

  it("fits a wide image within maxSize, keeping its aspect ratio", async () => {
    const png = ready(await renderThumbnail(chunks(await solidPng(1000, 250)), { maxSize: 100 }));
    expect(await sharp(png).metadata()).toMatchObject({ format: "png", width: 100, height: 25 });
  });

  it("does not enlarge a small image", async () => {
    const png = ready(await renderThumbnail(chunks(await solidPng(40, 30)), { maxSize: 256 }));
    expect(await sharp(png).metadata()).toMatchObject({ width: 40, height: 30 });
  });

  it("fails a truncated PNG", async () => {
    const png = await twoHalves(200, 200).png().toBuffer();
    const result = await renderThumbnail(chunks(png.subarray(0, png.length / 2)), { maxSize: 64 });
    expect(result).toEqual({
      kind: "failed",
      reason: expect.stringMatching(/^the content is not a decodable image: \S/),
    });
  });

  it("fails content that is no image at all", async () => {
    const text = new TextEncoder().encode("just some text, not pixels\n");
    const result = await renderThumbnail(chunks(text), { maxSize: 64 });
    expect(result).toMatchObject({ kind: "failed", reason: /not a decodable image/ });
  });

  it("fails an image above limitInputPixels, saying so", async () => {
    const result = await renderThumbnail(chunks(await solidPng(100, 100)), {
      maxSize: 64,
      limitInputPixels: 5000,
    });
    expect(result).toEqual({ kind: "failed", reason: "the image has more than 5000 pixels" });
  });

  it("fails content longer than maxInputBytes", async () => {
    const png = await twoHalves(100, 100).png().toBuffer();
    const result = await renderThumbnail(chunks(png, 100), { maxSize: 64, maxInputBytes: 200 });
    expect(result).toEqual({ kind: "failed", reason: "the image is larger than 200 bytes" });
  });

  it("rejects with the error of the content's source", async () => {
    const lost = new Error("storage went away");
    async function* broken(): AsyncGenerator<Uint8Array> {
      yield (await solidPng(10, 10)).subarray(0, 20);
      throw lost;
    }
    await expect(renderThumbnail(broken(), { maxSize: 64 })).rejects.toBe(lost);
  });

  describe("with a decompression bomb", () => {
    let bomb: string;

    beforeAll(async () => {
      bomb = await decompressionBomb();
    });

    it("fails it by default without decoding it", async () => {
      // A process of its own, so that its peak memory is the rendering's alone.
      const script = `
        import { createReadStream } from "node:fs";
        const { renderThumbnail } = await import(${JSON.stringify(new URL("./thumbnail.ts", import.meta.url).href)});
        const before = process.resourceUsage().maxRSS;
        const result = await renderThumbnail(createReadStream(${JSON.stringify(bomb)}), { maxSize: 256 });
        const after = process.resourceUsage().maxRSS;
        console.log(JSON.stringify({ result, before, after }));
      `;
      const { stdout } = await promisify(execFile)(process.execPath, [
        "--input-type=module",
        "--eval",
        script,
      ]);
      const { result, before, after } = JSON.parse(stdout);
      expect(result).toEqual({ kind: "failed", reason: "the image has more than 50000000 pixels" });
      // maxRSS is in kilobytes.
      expect((after - before) * 1024).toBeLessThan(100 * 1024 * 1024);
    });
  });
});

describe("resizeThumbnail", () => {
  it("scales a stored thumbnail down to the size asked for", async () => {
    const stored = await solidPng(1024, 512);
    expect(await sharp(await resizeThumbnail(stored, 256)).metadata()).toMatchObject({
      format: "png",
      width: 256,
      height: 128,
    });
  });

  it("never enlarges it", async () => {
    const stored = await solidPng(100, 50);
    expect(await sharp(await resizeThumbnail(stored, 256)).metadata()).toMatchObject({
      width: 100,
      height: 50,
    });
  });
});

describe("thumbnailSizeFor", () => {
  it("gives the default for an unset max_size and clamps large ones", () => {
    expect(thumbnailSizeFor(0)).toBe(defaultThumbnailSize);
    expect(thumbnailSizeFor(64)).toBe(64);
    expect(thumbnailSizeFor(maxThumbnailSize)).toBe(maxThumbnailSize);
    expect(thumbnailSizeFor(5000)).toBe(maxThumbnailSize);
  });

  it("refuses a negative max_size", () => {
    expect(() => thumbnailSizeFor(-1)).toThrow(
      expect.objectContaining({
        code: Code.InvalidArgument,
        rawMessage: "max_size must not be negative, got -1",
      }),
    );
  });
});

describe("hasThumbnail", () => {
  it("holds for the raster types sharp decodes, not for SVG or documents", () => {
    expect(hasThumbnail("image/apng")).toBe(true);
    expect(hasThumbnail("Image/PNG; foo=bar")).toBe(true);
    expect(hasThumbnail("image/svg+xml")).toBe(false);
    expect(hasThumbnail("application/pdf")).toBe(false);
    expect(hasThumbnail("text/plain")).toBe(false);
  });
});
