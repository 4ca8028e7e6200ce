// Reading the replies of Redis Streams commands, which arrive as nested arrays of buffers.
import type { Log } from "../log.ts";

/** The stream field holding an entry's bytes. */
export const DATA_FIELD = "d";

/** Whether a Redis error reply starts with `code` (BUSYGROUP, NOGROUP, NOSCRIPT…). */
export function hasCode(err: unknown, code: string): boolean {
  return err instanceof Error && err.message.startsWith(code);
}

/** The bytes as a Buffer over the same memory, as ioredis sends them. */
export function toBuffer(data: Uint8Array): Buffer {
  return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}

/** A reply that must be an array (a multi-bulk reply). */
export function asArray(value: unknown): unknown[] {
  if (!Array.isArray(value)) throw new Error(`unexpected Redis reply: ${String(value)}`);
  return value;
}

/** An array reply, or none for a nil one. */
export function asArrayOrEmpty(value: unknown): unknown[] {
  return value === undefined || value === null ? [] : asArray(value);
}

/** A bulk, simple or integer reply as text. */
export function asText(value: unknown): string {
  if (Buffer.isBuffer(value)) return value.toString();
  if (typeof value === "string" || typeof value === "number") return String(value);
  throw new Error(`unexpected Redis reply: ${String(value)}`);
}

/** A reply that must be a finite number, as an integer reply or its text. */
export function asNumber(value: unknown): number {
  const number = typeof value === "number" ? value : Number(asText(value));
  if (!Number.isFinite(number)) throw new Error(`unexpected Redis reply: ${String(value)}`);
  return number;
}

/**
 * Parses `[id, [field, value, …]]`; `data` is undefined for an entry deleted from the stream
 * (trimmed), which Redis returns with nil fields. Undefined for no entry at all.
 */
export function parseEntry(
  raw: unknown,
  log: Log,
): { id: string; data: Uint8Array | undefined } | undefined {
  if (raw === null || raw === undefined) return undefined;
  const [rawId, fields] = asArray(raw);
  const id = asText(rawId);
  if (fields === null || fields === undefined) return { id, data: undefined };
  const list = asArray(fields);
  for (let i = 0; i + 1 < list.length; i += 2) {
    const value = list[i + 1];
    if (asText(list[i]) === DATA_FIELD && Buffer.isBuffer(value)) {
      // A copy: the reply buffer may be a view into a much larger socket chunk.
      return { id, data: new Uint8Array(value) };
    }
  }
  // Not written by this transport: empty bytes are no valid envelope, so it gets dead-lettered.
  log.warn({ id }, `stream entry without a "${DATA_FIELD}" field`);
  return { id, data: new Uint8Array() };
}
