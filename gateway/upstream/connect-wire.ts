import type http2 from "node:http2";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  codeFromHttpStatus,
  codeToHttpStatus,
  codeToString,
  endStreamFlag,
  endStreamFromJson,
  errorFromJsonBytes,
} from "@connectrpc/connect/protocol-connect";

// Connect's wire format as the gateway speaks it to its upstreams and its native clients. This
// is the one module that uses connect-es's protocol helpers, which it marks internal (outside
// semantic versioning): connect-wire.test.ts pins what the gateway relies on.

// Connect's enveloped messages: one flags byte, a 32-bit big-endian length, the message.
const compressedFlag = 0b1;
const envelopeHeaderBytes = 5;

/** The Connect name of a code ("not_found"), as error bodies and WebSocket frames carry it. */
export const codeName: (code: Code) => string = codeToString;

/** The HTTP status a Connect error of this code answers with. */
export const httpStatusOfCode: (code: Code) => number = codeToHttpStatus;

/**
 * The envelope header of a message of `length` bytes in a Connect stream (no flags, the
 * length): written before the message's bytes, it spares copying them into an envelope.
 */
export function envelopeHeaderOf(length: number): Uint8Array {
  const header = new Uint8Array(envelopeHeaderBytes);
  new DataView(header.buffer).setUint32(1, length);
  return header;
}

/**
 * Splits a byte stream into enveloped messages; throws ResourceExhausted past `max` bytes.
 * A message spread over many chunks is joined once, when it is complete.
 */
async function* readEnvelopes(
  stream: AsyncIterable<unknown>,
  max: number,
): AsyncGenerator<{ flags: number; data: Uint8Array }> {
  let pending: Buffer[] = [];
  let size = 0;
  // The length of the message being received, once its header is in.
  let needed = envelopeHeaderBytes;
  for await (const chunk of stream) {
    pending.push(chunk as Buffer);
    size += (chunk as Buffer).length;
    while (size >= needed) {
      let buffer = pending.length === 1 ? (pending[0] as Buffer) : Buffer.concat(pending, size);
      pending = [buffer];
      if (needed === envelopeHeaderBytes) {
        const length = buffer.readUInt32BE(1);
        if (length > max) {
          throw new ConnectError(
            `upstream message larger than ${max} bytes`,
            Code.ResourceExhausted,
          );
        }
        needed = envelopeHeaderBytes + length;
        if (size < needed) break;
      }
      const flags = buffer[0] as number;
      yield { flags, data: buffer.subarray(envelopeHeaderBytes, needed) };
      buffer = buffer.subarray(needed);
      pending = buffer.length > 0 ? [buffer] : [];
      size = buffer.length;
      needed = envelopeHeaderBytes;
    }
  }
  if (size > 0) {
    throw new ConnectError("upstream stream ended inside a message", Code.Unavailable);
  }
}

/**
 * The messages of a Connect streaming response, up to its end-of-stream message; throws the
 * error that message carries, ResourceExhausted for a message over `max` bytes, Internal for a
 * compressed message (the gateway asks for none), and Unavailable for a stream cut short.
 */
export async function* readMessages(
  stream: AsyncIterable<unknown>,
  max: number,
): AsyncGenerator<Uint8Array, void> {
  for await (const envelope of readEnvelopes(stream, max)) {
    if ((envelope.flags & endStreamFlag) === endStreamFlag) {
      const end = endStreamFromJson(envelope.data);
      if (end.error !== undefined) throw end.error;
      return;
    }
    if ((envelope.flags & compressedFlag) !== 0) {
      throw new ConnectError("upstream sent a compressed message unasked", Code.Internal);
    }
    yield envelope.data;
  }
  throw new ConnectError("upstream ended the stream without its end", Code.Unavailable);
}

/**
 * The error of a Connect response that is not a success: its JSON error body, or, for a body
 * that is none (a proxy's error page), an error of the code the HTTP status maps to.
 */
export function errorOfResponse(
  status: number,
  headers: http2.IncomingHttpHeaders,
  body: Uint8Array,
): ConnectError {
  const metadata = metadataOf(headers);
  const fallback = new ConnectError(
    `upstream answered HTTP ${status}`,
    codeFromHttpStatus(status),
    metadata,
  );
  try {
    return errorFromJsonBytes(body, metadata, fallback);
  } catch {
    // errorFromJsonBytes throws the fallback when the body is not a Connect error.
    return fallback;
  }
}

/** Response headers without HTTP/2 pseudo-headers, as error metadata. */
function metadataOf(headers: http2.IncomingHttpHeaders): Headers {
  const out = new Headers();
  for (const [name, value] of Object.entries(headers)) {
    if (name.startsWith(":") || value === undefined) continue;
    for (const v of Array.isArray(value) ? value : [value]) out.append(name, String(v));
  }
  return out;
}
