import { createHash } from "node:crypto";

/** What content came to, measured as it passed. */
export interface Measured {
  readonly sizeBytes: number;
  /** 64 lowercase hex digits. */
  readonly sha256: string;
  /** The first bytes, for detecting the content type. */
  readonly head: Uint8Array;
}

/** Measures content chunk by chunk: size, SHA-256 and its first `headBytes` bytes. */
export interface Meter {
  update(chunk: Uint8Array): void;
  readonly sizeBytes: number;
  /** True once the first `headBytes` bytes have passed. */
  readonly headFull: boolean;
  readonly head: Uint8Array;
  /** Ends the measure; call once. */
  finish(): Measured;
}

/** Creates a meter that keeps the first `headBytes` bytes. */
export function createMeter(headBytes: number): Meter {
  const hash = createHash("sha256");
  const head = new Uint8Array(headBytes);
  let headSize = 0;
  let sizeBytes = 0;
  return {
    update(chunk) {
      hash.update(chunk);
      sizeBytes += chunk.byteLength;
      if (headSize < headBytes) {
        const taken = chunk.subarray(0, headBytes - headSize);
        head.set(taken, headSize);
        headSize += taken.byteLength;
      }
    },
    get sizeBytes() {
      return sizeBytes;
    },
    get headFull() {
      return headSize === headBytes;
    },
    get head() {
      return head.subarray(0, headSize);
    },
    finish() {
      return { sizeBytes, sha256: hash.digest("hex"), head: head.subarray(0, headSize) };
    },
  };
}

/** Measures content read back from the storage. */
export async function measure(
  content: AsyncIterable<Uint8Array>,
  headBytes: number,
): Promise<Measured> {
  const meter = createMeter(headBytes);
  for await (const chunk of content) meter.update(chunk);
  return meter.finish();
}
