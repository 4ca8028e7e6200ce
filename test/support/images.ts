import { randomUUID } from "node:crypto";
import { access, rename } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import sharp from "sharp";

/**
 * The path of a decompression bomb: a 20000 x 20000 PNG of one colour, about 1 MB on disk and
 * 1.2 GB once decoded. Made once per machine (it takes seconds) and shared by the tests.
 */
export async function decompressionBomb(): Promise<string> {
  const path = join(tmpdir(), "protomesh-test-bomb-20000.png");
  try {
    await access(path);
    return path;
  } catch {
    const partial = `${path}.${randomUUID()}`;
    await sharp({
      create: { width: 20_000, height: 20_000, channels: 3, background: "#f00" },
      limitInputPixels: false,
    })
      .png()
      .toFile(partial);
    await rename(partial, path);
    return path;
  }
}
