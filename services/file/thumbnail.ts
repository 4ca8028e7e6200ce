import { once } from "node:events";
import { Code, ConnectError } from "@connectrpc/connect";
import sharp, { type Sharp } from "sharp";

/** GetThumbnail's max_size when the request leaves it unset. */
export const defaultThumbnailSize = 256;

/** The largest max_size GetThumbnail serves; larger requests get this size. */
export const maxThumbnailSize = 1024;

/**
 * The most pixels (width x height) an image may have to get a thumbnail. libvips checks it from
 * the image's header before decoding, so a small file that would decode to gigabytes (a
 * decompression bomb) fails instead. 50 megapixels covers the photos of current cameras.
 */
export const defaultLimitInputPixels = 50_000_000;

/**
 * The most bytes of content rendered into a thumbnail. sharp gathers streamed input into one
 * buffer before decoding it, so the content is bounded here rather than by the pixel limit alone.
 */
export const defaultMaxInputBytes = 256 * 1024 * 1024;

// The raster formats that sharp's prebuilt libvips decodes. APNG is a PNG with extra frames, of
// which the first is rendered. SVG is never rendered: it is a document, not pixels.
const thumbnailContentTypes: ReadonlySet<string> = new Set([
  "image/jpeg",
  "image/png",
  "image/apng",
  "image/webp",
  "image/gif",
  "image/avif",
  "image/tiff",
]);

// sharp's own wording when an image's header declares more pixels than limitInputPixels.
const pixelLimitMessage = "exceeds pixel limit";

/** Whether a file of this media type gets a thumbnail; parameters are ignored. */
export function hasThumbnail(contentType: string): boolean {
  const essence = contentType.split(";", 1)[0] ?? "";
  return thumbnailContentTypes.has(essence.trim().toLowerCase());
}

/**
 * The size a GetThumbnail request gets for its max_size: the default when unset (0), at most
 * maxThumbnailSize. A negative size is InvalidArgument.
 */
export function thumbnailSizeFor(maxSize: number): number {
  if (maxSize < 0) {
    throw new ConnectError(`max_size must not be negative, got ${maxSize}`, Code.InvalidArgument);
  }
  if (maxSize === 0) return defaultThumbnailSize;
  return Math.min(maxSize, maxThumbnailSize);
}

/** Bounds of renderThumbnail. */
export interface RenderOptions {
  /** Largest width and height of the thumbnail, in pixels. */
  readonly maxSize: number;
  /** Images with more pixels fail; defaultLimitInputPixels when unset. */
  readonly limitInputPixels?: number;
  /** Content longer than this fails; defaultMaxInputBytes when unset. */
  readonly maxInputBytes?: number;
}

/** What rendering a thumbnail gave: the PNG, or why there is none, for the log. */
export type ThumbnailResult =
  | { readonly kind: "ready"; readonly png: Uint8Array }
  | { readonly kind: "failed"; readonly reason: string };

/**
 * Renders the thumbnail of an image streamed as `content`: turned upright as its EXIF
 * orientation says, without any metadata, within maxSize x maxSize with its aspect ratio kept
 * and never enlarged, as PNG. Content that is not a decodable image, or is beyond the bounds,
 * resolves as failed; an error reading `content` rejects.
 */
export async function renderThumbnail(
  content: AsyncIterable<Uint8Array>,
  options: RenderOptions,
): Promise<ThumbnailResult> {
  const limitInputPixels = options.limitInputPixels ?? defaultLimitInputPixels;
  const maxInputBytes = options.maxInputBytes ?? defaultMaxInputBytes;
  // "error" rather than sharp's default "warning": camera JPEGs often carry harmless decoder
  // warnings, while truncated or broken pixel data still fails.
  const image = fitWithin(sharp({ autoOrient: true, failOn: "error", limitInputPixels }), options);
  const output = image.toBuffer().then(
    (png): ThumbnailResult => ({ kind: "ready", png }),
    (error: unknown): ThumbnailResult => ({
      kind: "failed",
      reason: failure(error, limitInputPixels),
    }),
  );
  try {
    const fed = await feed(content, image, maxInputBytes);
    if (!fed) {
      image.destroy();
      return { kind: "failed", reason: `the image is larger than ${maxInputBytes} bytes` };
    }
  } catch (error) {
    image.destroy();
    throw error;
  }
  return output;
}

/** Scales a stored thumbnail down to fit within maxSize x maxSize, as PNG; never enlarges it. */
export async function resizeThumbnail(png: Uint8Array, maxSize: number): Promise<Uint8Array> {
  return fitWithin(sharp(png), { maxSize }).toBuffer();
}

function fitWithin(image: Sharp, { maxSize }: { readonly maxSize: number }): Sharp {
  // sharp strips every metadata block from its output unless asked to keep them.
  return image.resize(maxSize, maxSize, { fit: "inside", withoutEnlargement: true }).png();
}

// Writes `content` into sharp's input side, honouring backpressure, and ends it. False, with the
// input left open, once more than maxInputBytes arrived.
async function feed(
  content: AsyncIterable<Uint8Array>,
  image: Sharp,
  maxInputBytes: number,
): Promise<boolean> {
  let received = 0;
  for await (const chunk of content) {
    received += chunk.byteLength;
    if (received > maxInputBytes) return false;
    // sharp takes only Buffers; this one shares the chunk's memory.
    const buffer = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    if (!image.write(buffer)) await once(image, "drain");
  }
  image.end();
  return true;
}

function failure(error: unknown, limitInputPixels: number): string {
  const message = error instanceof Error ? error.message : String(error);
  if (message.includes(pixelLimitMessage)) {
    return `the image has more than ${limitInputPixels} pixels`;
  }
  // libvips reports a chain of lines, the first of which names the cause.
  return `the content is not a decodable image: ${message.split("\n", 1)[0]}`;
}
