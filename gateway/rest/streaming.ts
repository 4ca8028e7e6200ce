import { constants, Http2ServerResponse } from "node:http2";
import type { DescMessage, Message } from "@bufbuild/protobuf";
import { fromBinary, toBinary } from "@bufbuild/protobuf";
import { BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import { Code, ConnectError } from "@connectrpc/connect";
import busboy from "busboy";
import type { HttpBody } from "../../gen/google/api/httpbody_pb.ts";
import { errorBodyOf } from "../../kit/error-body.ts";
import { drainedOrClosed } from "../../kit/node-http.ts";
import type { GatewayRequest, GatewayResponse } from "../exchange.ts";
import { sendError } from "../http-error.ts";
import type { Route } from "../routing/route-table.ts";
import type { ServiceUpstream } from "../upstream/service-upstream.ts";
import { type CallOptions, responseMetadataOf, type StreamCall } from "../upstream/upstream.ts";
import { bindRequest } from "./request-binding.ts";
import { bindResponse } from "./response-binding.ts";

/** One REST call of a streaming RPC: where it goes and with what. */
export interface StreamingCall {
  readonly route: Route;
  readonly upstream: ServiceUpstream;
  readonly options: CallOptions;
}

/** True for google.api.HttpBody, whose messages are raw bytes with a content type over REST. */
export function isHttpBody(message: DescMessage): boolean {
  return message.typeName === "google.api.HttpBody";
}

/**
 * Relays a server-streaming call to a REST client: raw bytes for google.api.HttpBody messages
 * (with the first message's content type), else Server-Sent Events when the client accepts
 * `text/event-stream`, else NDJSON. The status is decided by the first message: an error before
 * it is an ordinary JSON error response, an error after it ends the stream with an error event
 * (SSE, NDJSON) or an aborted body (raw bytes), never a clean end.
 */
export async function relayServerStream(
  call: StreamingCall,
  request: Message,
  req: GatewayRequest,
  res: GatewayResponse,
): Promise<void> {
  const { route } = call;
  const output = route.method.output;
  const stream = await openServerStream(call, request);
  const format = isHttpBody(output)
    ? "raw"
    : /\btext\/event-stream\b/i.test(req.headers.accept ?? "")
      ? "sse"
      : "ndjson";
  let started = false;
  try {
    for await (const bytes of stream.responses) {
      const message = fromBinary(output, bytes);
      if (!started) {
        started = true;
        const headers = {
          ...responseMetadataOf(await stream.headers),
          "cache-control": "no-store",
        };
        res.writeHead(200, { ...headers, "content-type": contentTypeOf(format, message) });
      }
      await write(res, frameOf(format, route, message));
    }
  } catch (err) {
    if (!started) throw err;
    const error = ConnectError.from(err);
    if (format === "raw") {
      // Raw bytes have no room for an error: the body ends unfinished, which clients notice.
      abortResponse(res);
      return;
    }
    res.end(errorFrameOf(format, error));
    return;
  }
  if (!started) {
    // A stream without messages: an empty body, in the format the client asked for.
    res.writeHead(200, {
      ...responseMetadataOf(await stream.headers),
      "cache-control": "no-store",
      "content-type": contentTypeOf(format, undefined),
    });
  }
  res.end();
}

/** Opens a server-streaming call and sends its one request message. */
export async function openServerStream(call: StreamingCall, request: Message): Promise<StreamCall> {
  const { route, upstream, options } = call;
  const stream = upstream.stream(route.method, options);
  await stream.send(toBinary(route.method.input, request));
  stream.end();
  return stream;
}

type StreamFormat = "raw" | "sse" | "ndjson";

function contentTypeOf(format: StreamFormat, first: Message | undefined): string {
  switch (format) {
    case "raw":
      return (first as HttpBody | undefined)?.contentType || "application/octet-stream";
    case "sse":
      return "text/event-stream";
    case "ndjson":
      return "application/x-ndjson";
  }
}

function frameOf(format: StreamFormat, route: Route, message: Message): Uint8Array | string {
  switch (format) {
    case "raw":
      return (message as HttpBody).data;
    case "sse":
      return `data: ${JSON.stringify(bindResponse(route, message))}\n\n`;
    case "ndjson":
      return `${JSON.stringify({ result: bindResponse(route, message) })}\n`;
  }
}

function errorFrameOf(format: "sse" | "ndjson", error: ConnectError): string {
  const body = JSON.stringify(errorBodyOf(error));
  return format === "sse" ? `event: error\ndata: ${body}\n\n` : `{"error":${body}}\n`;
}

/**
 * Ends a response whose body cannot be finished so that the client sees it fail: HTTP/2 resets
 * the stream with INTERNAL_ERROR (a plain destroy resets it with NO_ERROR, which a client reads
 * as a clean end), HTTP/1.1 closes the connection before the body is complete.
 */
export function abortResponse(res: GatewayResponse): void {
  if (res instanceof Http2ServerResponse) res.stream.close(constants.NGHTTP2_INTERNAL_ERROR);
  else res.destroy();
}

/** Writes to the client, waiting while its connection is full (backpressure). */
export async function write(res: GatewayResponse, chunk: Uint8Array | string): Promise<void> {
  if (!res.write(chunk)) await drainedOrClosed(res);
}

/** Options of relayUpload. */
export interface UploadOptions {
  readonly bindings: ReadonlyMap<string, string>;
  readonly query: URLSearchParams;
  /** The most bytes of content one upload may carry. */
  readonly maxUploadBytes: number;
}

/**
 * Relays a REST upload to a client-streaming call whose `body` names a bytes field: the path
 * and query parameters (and a multipart form's text fields) bind to a first message, then
 * every piece of the content goes out in a message of its own with only that field set, as it
 * arrives and no faster than the upstream takes it, so memory stays constant whatever the size.
 * The raw request body is the content, or the one file part of a `multipart/form-data` body.
 */
export async function relayUpload(
  call: StreamingCall,
  upload: UploadOptions,
  req: GatewayRequest,
  res: GatewayResponse,
): Promise<void> {
  const { route, upstream, options } = call;
  const { method } = route;
  const chunkField = route.bodyField;
  if (chunkField === undefined) throw new Error(`${method.name} has no bytes body field`);
  const stream = upstream.stream(method, options);
  // Read from the start: an upstream that fails early stops the upload at once.
  const answer = lastMessageOf(stream.responses);
  answer.catch((err: unknown) => stream.cancel(ConnectError.from(err)));
  let sent = 0;
  const sendFirst = async (query: URLSearchParams) => {
    const first = bindRequest(route, upload.bindings, query, undefined);
    const bytes = toBinary(method.input, first);
    // Nothing bound: the content starts with the first message.
    if (bytes.byteLength > 0) await stream.send(bytes);
  };
  const sendContent = async (content: AsyncIterable<unknown>) => {
    for await (const chunk of content) {
      sent += (chunk as Buffer).length;
      if (sent > upload.maxUploadBytes) {
        throw new ConnectError(
          `the upload is larger than ${upload.maxUploadBytes} bytes`,
          Code.ResourceExhausted,
        );
      }
      const bytes = chunk as Buffer;
      // A message with only the bytes field set: its key and length, then the chunk as it is.
      await stream.send(lengthDelimitedKey(chunkField.number, bytes.byteLength), bytes);
    }
  };
  let response: Uint8Array | undefined;
  try {
    const type = (req.headers["content-type"] ?? "").toLowerCase();
    if (type.startsWith("multipart/form-data")) {
      await relayForm(req, upload.query, sendFirst, sendContent);
    } else {
      await sendFirst(upload.query);
      await sendContent(req);
    }
    stream.end();
    response = await answer;
  } catch (err) {
    const error = ConnectError.from(err);
    stream.cancel(error);
    // The client may still be sending: an HTTP/1.1 connection cannot carry another request.
    const headers: Record<string, string> =
      req.httpVersionMajor === 1 && !req.complete ? { connection: "close" } : {};
    // Admitted already, an upload that exhausts something exhausts room: the gateway's bound,
    // or the upstream's (a file size limit, a quota).
    const tooLarge = error.code === Code.ResourceExhausted;
    sendError(res, error, tooLarge ? { status: 413, headers } : { headers });
    return;
  }
  if (response === undefined) {
    throw new ConnectError("the upstream answered the upload with no message", Code.Internal);
  }
  const headers = responseMetadataOf(await stream.headers);
  res.writeHead(200, {
    ...headers,
    "content-type": "application/json",
    "cache-control": "no-store",
  });
  res.end(JSON.stringify(bindResponse(route, fromBinary(method.output, response))));
}

/** The last message of a stream (the answer of a client-streaming call), once it ends. */
export async function lastMessageOf(
  messages: AsyncIterable<Uint8Array>,
): Promise<Uint8Array | undefined> {
  let last: Uint8Array | undefined;
  for await (const message of messages) last = message;
  return last;
}

/**
 * Reads a multipart form: text fields before the file part join the query parameters of the
 * first message; the one file part is the content. A second file part, or a field after the
 * file, is refused with InvalidArgument.
 */
function relayForm(
  req: GatewayRequest,
  query: URLSearchParams,
  sendFirst: (query: URLSearchParams) => Promise<void>,
  sendContent: (content: AsyncIterable<unknown>) => Promise<void>,
): Promise<void> {
  return new Promise((resolve, reject) => {
    let parser: busboy.Busboy;
    try {
      parser = busboy({ headers: req.headers, limits: { files: 1, fields: 100 } });
    } catch (err) {
      reject(invalid(`malformed multipart form: ${(err as Error).message}`));
      return;
    }
    const fields = new URLSearchParams(query);
    let file: Promise<void> | undefined;
    let failed = false;
    const fail = (err: unknown) => {
      if (failed) return;
      failed = true;
      req.unpipe(parser);
      reject(err);
    };
    parser.on("field", (name, value) => {
      if (file !== undefined) fail(invalid(`form field "${name}" must come before the file`));
      else fields.append(name, value);
    });
    parser.on("file", (_name, content) => {
      if (file !== undefined) {
        content.resume();
        return;
      }
      file = sendFirst(fields).then(() => sendContent(content));
      file.catch((err: unknown) => {
        content.resume();
        fail(err);
      });
    });
    parser.on("filesLimit", () => fail(invalid("the form must carry exactly one file")));
    parser.on("error", (err: Error) => fail(invalid(`malformed multipart form: ${err.message}`)));
    parser.on("close", () => {
      if (file === undefined) {
        fail(invalid("the form carries no file"));
        return;
      }
      file.then(() => {
        if (!failed) resolve();
      }, fail);
    });
    req.pipe(parser);
  });
}

function invalid(message: string): ConnectError {
  return new ConnectError(message, Code.InvalidArgument);
}

/** The key (field number, wire type 2) and length that precede a length-delimited field. */
function lengthDelimitedKey(fieldNumber: number, length: number): Uint8Array {
  return new BinaryWriter().tag(fieldNumber, WireType.LengthDelimited).uint32(length).finish();
}
