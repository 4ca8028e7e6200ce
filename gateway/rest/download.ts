// Ranged HTTP downloads (RFC 9110 §14) of the server-streaming google.api.HttpBody RPCs that carry
// the `protomesh.options.v1.download` option. The Range and If-None-Match grammar is parsed here
// rather than with range-parser or fresh: the range binds to the request before the content's
// size is known (range-parser needs it), and the ETag is only known once the upstream answers.
import type { DescField, DescMessage, Message } from "@bufbuild/protobuf";
import { clone, fromBinary } from "@bufbuild/protobuf";
import { reflect } from "@bufbuild/protobuf/reflect";
import { Code, ConnectError } from "@connectrpc/connect";
import type { HttpBody } from "../../gen/google/api/httpbody_pb.ts";
import type { GatewayRequest, GatewayResponse } from "../exchange.ts";
import { sendError } from "../http-error.ts";
import type { DownloadFields } from "../routing/route-table.ts";
import { responseMetadataOf, type StreamCall } from "../upstream/upstream.ts";
import { abortResponse, openServerStream, type StreamingCall, write } from "./streaming.ts";

/** The range a request asks for, as the download option's offset and length fields take it. */
export interface RequestedRange {
  /** The first byte; negative counts from the end (`-n` is the last n bytes). */
  readonly offset: bigint;
  /** The number of bytes; 0 for everything from the offset on. */
  readonly length: bigint;
}

/** What an upstream's `content-range` response header says of the body it sends. */
export interface ContentRange {
  /** The offset of the body's first byte; undefined for an empty body (`bytes *\/size`). */
  readonly first: number | undefined;
  /** The number of bytes of the body. */
  readonly length: number;
  /** The size of the whole content. */
  readonly size: number;
}

const rangeHeader = "range";
const ifNoneMatchHeader = "if-none-match";
const ifRangeHeader = "if-range";
const lastModifiedHeader = "last-modified";
const contentRangeHeader = "content-range";
const etagHeader = "etag";
const acceptRanges = { "accept-ranges": "bytes" } as const;
// Stored by the client's own cache, and checked with the upstream (If-None-Match) before reuse.
const downloadCacheControl = "private, no-cache";

const maxInt64 = 2n ** 63n - 1n;
const byteRangeSpec = /^(\d*)-(\d*)$/;
const satisfiedRange = /^bytes (\d+)-(\d+)\/(\d+)$/;
const unsatisfiedRange = /^bytes \*\/(\d+)$/;
// One member of an entity-tag list and the comma after it (RFC 9110 §8.8.3, §13.1.2).
const entityTagItem = /\s*(?:W\/)?"([^"]*)"\s*(?:,|$)/y;
const entityTag = /^(?:W\/)?"([^"]*)"$/;

/**
 * The one range of a `Range: bytes=...` header (RFC 9110 §14.1.2): `a-b`, `a-` or `-n`.
 * Undefined for a header the gateway does not serve (another unit, several ranges, a malformed
 * or empty one): RFC 9110 §14.2 lets a server ignore Range and send the whole content.
 */
export function parseRange(header: string | undefined): RequestedRange | undefined {
  if (header === undefined) return undefined;
  const equals = header.indexOf("=");
  if (equals < 0 || header.slice(0, equals).trim().toLowerCase() !== "bytes") return undefined;
  // A recipient ignores the empty elements of a list (RFC 9110 §5.6.1.2).
  const specs = header
    .slice(equals + 1)
    .split(",")
    .map((spec) => spec.trim())
    .filter((spec) => spec !== "");
  const match = specs.length === 1 ? byteRangeSpec.exec(specs[0] as string) : null;
  if (match === null) return undefined;
  const [, first = "", last = ""] = match;
  if (first === "") {
    // `-0` selects nothing, and `-` is no range at all.
    if (last === "" || BigInt(last) === 0n) return undefined;
    // A suffix longer than any content is the whole content.
    return { offset: -min(BigInt(last), maxInt64), length: 0n };
  }
  const offset = BigInt(first);
  if (offset > maxInt64) return undefined;
  if (last === "") return { offset, length: 0n };
  const end = BigInt(last);
  if (end < offset) return undefined;
  // A last position past the end stands for the end (RFC 9110 §14.1.1): the upstream clamps it.
  return { offset, length: min(end - offset + 1n, maxInt64) };
}

function min(a: bigint, b: bigint): bigint {
  return a < b ? a : b;
}

/**
 * Reads an upstream's `content-range`: "bytes a-b/size", or "bytes *\/size" for an empty body.
 * Undefined when it is absent or not one of those forms.
 */
export function parseContentRange(value: string | undefined): ContentRange | undefined {
  if (value === undefined) return undefined;
  const empty = unsatisfiedRange.exec(value);
  if (empty !== null) {
    const size = Number(empty[1]);
    return Number.isSafeInteger(size) ? { first: undefined, length: 0, size } : undefined;
  }
  const match = satisfiedRange.exec(value);
  if (match === null) return undefined;
  const [first, last, size] = match.slice(1).map(Number) as [number, number, number];
  if (!Number.isSafeInteger(size) || first > last || last >= size) return undefined;
  return { first, length: last - first + 1, size };
}

/**
 * Whether an If-None-Match header names `etag` (RFC 9110 §13.1.2): `*` names any content, a
 * list of entity tags names the ones it lists, compared weakly (a `W/` prefix does not matter).
 * A malformed header names nothing.
 */
export function namesEtag(header: string | undefined, etag: string | undefined): boolean {
  if (header === undefined) return false;
  if (header.trim() === "*") return true;
  const tag = etag === undefined ? undefined : entityTag.exec(etag.trim())?.[1];
  if (tag === undefined) return false;
  entityTagItem.lastIndex = 0;
  while (entityTagItem.lastIndex < header.length) {
    const item = entityTagItem.exec(header);
    if (item === null) return false;
    if (item[1] === tag) return true;
  }
  return false;
}

/**
 * Whether the If-Range condition of a Range request holds (RFC 9110 §13.1.5): true without the
 * header; else the upstream's ETag equals it in a strong comparison (neither side weak), or its
 * Last-Modified equals the date it gives.
 */
export function ifRangeHolds(
  header: string | undefined,
  upstream: Readonly<Record<string, string>>,
): boolean {
  if (header === undefined) return true;
  const condition = header.trim();
  if (condition.startsWith('"'))
    return entityTag.test(condition) && upstream[etagHeader] === condition;
  // A weak tag never matches in a strong comparison.
  if (condition.startsWith("W/")) return false;
  return upstream[lastModifiedHeader] === condition;
}

/**
 * Relays a call of a route with the download option: a usable Range header binds to the
 * option's fields, and the upstream's `content-range` decides the answer: 206 with Content-Range
 * to a Range request, 200 with the body's length otherwise, 304 without a body (the upstream call
 * cancelled) when If-None-Match names the ETag, 416 when the upstream fails with OUT_OF_RANGE.
 * When an If-Range condition fails, the whole content is asked for again and sent with 200.
 * A body that fails midway or does not add up to its Content-Length is aborted. An upstream that
 * sends no `content-range` is relayed as any other stream of raw bytes, without a length.
 */
export async function relayDownload(
  call: StreamingCall,
  fields: DownloadFields,
  request: Message,
  req: GatewayRequest,
  res: GatewayResponse,
): Promise<void> {
  const { method } = call.route;
  const range = parseRange(req.headers[rangeHeader]);
  if (range === undefined) {
    await relayContent(call, request, undefined, req, res);
    return;
  }
  const ranged = reflect(method.input, clone(method.input, request));
  ranged.set(fields.offset, int64Of(fields.offset, range.offset));
  ranged.set(fields.length, int64Of(fields.length, range.length));
  if ((await relayContent(call, ranged.message, range, req, res)) === "stale") {
    await relayContent(call, request, undefined, req, res);
  }
}

// A field with `jstype = JS_STRING` holds its 64-bit value as a string.
function int64Of(field: DescField, value: bigint): bigint | string {
  return field.fieldKind === "scalar" && field.longAsString ? String(value) : value;
}

/**
 * Relays one upstream call of a download, of `range` if the request's Range bound to it;
 * "stale", with nothing written, when the request's If-Range condition fails.
 */
async function relayContent(
  call: StreamingCall,
  request: Message,
  range: RequestedRange | undefined,
  req: GatewayRequest,
  res: GatewayResponse,
): Promise<"sent" | "stale"> {
  const given = req.headers[ifRangeHeader];
  // Node joins a repeated If-Range with commas: a condition that never holds.
  const ifRange = range === undefined || given === undefined ? undefined : String(given);
  const stream = await openServerStream(call, request);
  const bodies = bodiesOf(stream, call.route.method.output);
  let first: IteratorResult<HttpBody>;
  try {
    first = await bodies.next();
  } catch (err) {
    const error = ConnectError.from(err);
    if (error.code !== Code.OutOfRange) throw error;
    // The range may be out of a content that changed since the client's copy: send it all.
    if (ifRange !== undefined) return "stale";
    // The error's metadata carries the content's size as "bytes */size" (RFC 9110 §15.5.17).
    const headers = responseMetadataOf(Object.fromEntries(error.metadata), { ...acceptRanges });
    sendError(res, error, { status: 416, headers });
    return "sent";
  }
  const upstream = responseMetadataOf(await stream.headers);
  if (!ifRangeHolds(ifRange, upstream)) {
    stream.cancel(new ConnectError("the client's copy is stale", Code.Canceled));
    return "stale";
  }
  const body = first.done ? undefined : first.value;
  const head = headOf(req, range, upstream, body);
  res.writeHead(head.status, head.headers);
  if (head.status === 304 || req.method === "HEAD") {
    stream.cancel(new ConnectError("the response has no body", Code.Canceled));
    res.end();
    return "sent";
  }
  await sendBody(res, stream, body, bodies, head.length);
  return "sent";
}

async function* bodiesOf(stream: StreamCall, output: DescMessage): AsyncGenerator<HttpBody> {
  for await (const bytes of stream.responses) yield fromBinary(output, bytes) as HttpBody;
}

/** The status and headers of a download's answer. */
interface DownloadHead {
  readonly status: number;
  readonly headers: Record<string, string>;
  /** The length its body must have; undefined when nothing says it. */
  readonly length: number | undefined;
}

function headOf(
  req: GatewayRequest,
  range: RequestedRange | undefined,
  upstream: Record<string, string>,
  first: HttpBody | undefined,
): DownloadHead {
  const { [contentRangeHeader]: contentRange, ...headers } = upstream;
  const described = parseContentRange(contentRange);
  const contentType = first?.contentType || "application/octet-stream";
  if (described === undefined) {
    headers["cache-control"] = "no-store";
    headers["content-type"] = contentType;
    return { status: 200, headers, length: undefined };
  }
  const cache = { ...acceptRanges, "cache-control": downloadCacheControl };
  const etag = upstream[etagHeader];
  if (namesEtag(req.headers[ifNoneMatchHeader], etag)) {
    return {
      status: 304,
      headers: etag === undefined ? cache : { ...cache, etag },
      length: undefined,
    };
  }
  Object.assign(headers, cache, {
    "content-type": contentType,
    "content-length": String(described.length),
  });
  // An empty body has no range to name: it goes out whole, with 200.
  if (range === undefined || described.first === undefined) {
    return { status: 200, headers, length: described.length };
  }
  const last = described.first + described.length - 1;
  headers[contentRangeHeader] = `bytes ${described.first}-${last}/${described.size}`;
  return { status: 206, headers, length: described.length };
}

/**
 * Writes the data of every message to the client with backpressure, from `first` on. A failure
 * midway, or a body longer or shorter than `length`, aborts the response: a client must not
 * take a truncated body for the whole.
 */
async function sendBody(
  res: GatewayResponse,
  stream: StreamCall,
  first: HttpBody | undefined,
  rest: AsyncIterator<HttpBody>,
  length: number | undefined,
): Promise<void> {
  let sent = 0;
  try {
    let body = first;
    while (body !== undefined) {
      sent += body.data.byteLength;
      if (length !== undefined && sent > length) {
        throw new ConnectError(`the upstream sent more than ${length} bytes`, Code.Internal);
      }
      await write(res, body.data);
      const next = await rest.next();
      body = next.done ? undefined : next.value;
    }
  } catch (err) {
    stream.cancel(ConnectError.from(err));
    abortResponse(res);
    return;
  }
  if (length !== undefined && sent !== length) {
    abortResponse(res);
    return;
  }
  res.end();
}
