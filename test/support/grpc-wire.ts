import http2 from "node:http2";
import type { DescMessage, MessageShape } from "@bufbuild/protobuf";
import { fromBinary, toBinary } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";

/** What came back for one raw HTTP/2 request: status, headers, trailers and body bytes. */
export interface RawResponse {
  readonly httpStatus: number;
  readonly headers: http2.IncomingHttpHeaders;
  readonly trailers: http2.IncomingHttpHeaders;
  readonly body: Buffer;
  /** grpc-status from the trailers, or from the headers of a trailers-only response. */
  readonly grpcStatus: number | undefined;
  readonly grpcMessage: string | undefined;
}

/** Frames one gRPC message: a 1-byte compressed flag, a 4-byte big-endian length, the bytes. */
export function grpcFrame(message: Uint8Array, declaredLength = message.length): Buffer {
  const prefix = Buffer.alloc(5);
  prefix.writeUInt8(0, 0);
  prefix.writeUInt32BE(declaredLength, 1);
  return Buffer.concat([prefix, message]);
}

/** POSTs raw `body` to `path` over a new h2c connection with gRPC headers; collects the reply. */
export function rawGrpcPost(
  baseUrl: string,
  path: string,
  body: Uint8Array,
  headers: http2.OutgoingHttpHeaders = {},
  timeoutMs = 20_000,
): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(baseUrl);
    const timer = setTimeout(() => {
      session.destroy();
      reject(new Error(`no complete response to ${path} within ${timeoutMs} ms`));
    }, timeoutMs);
    const fail = (err: Error) => {
      clearTimeout(timer);
      session.destroy();
      reject(err);
    };
    session.once("error", fail);
    const stream = session.request({
      ":method": "POST",
      ":path": path,
      "content-type": "application/grpc",
      te: "trailers",
      ...headers,
    });
    let responseHeaders: http2.IncomingHttpHeaders = {};
    let trailers: http2.IncomingHttpHeaders = {};
    const chunks: Buffer[] = [];
    stream.once("response", (h) => {
      responseHeaders = h;
    });
    stream.once("trailers", (t) => {
      trailers = t;
    });
    stream.on("data", (chunk: Buffer) => chunks.push(chunk));
    stream.once("error", fail);
    stream.once("close", () => {
      clearTimeout(timer);
      session.close();
      const status = trailers["grpc-status"] ?? responseHeaders["grpc-status"];
      const message = trailers["grpc-message"] ?? responseHeaders["grpc-message"];
      resolve({
        httpStatus: Number(responseHeaders[":status"]),
        headers: responseHeaders,
        trailers,
        body: Buffer.concat(chunks),
        grpcStatus: typeof status === "string" ? Number(status) : undefined,
        grpcMessage: typeof message === "string" ? decodeURIComponent(message) : undefined,
      });
    });
    stream.end(body);
  });
}

/** A status error from @grpc/grpc-js, or the response message of a successful call. */
export type GrpcJsResult<T> =
  | { readonly ok: true; readonly message: T }
  | { readonly ok: false; readonly code: grpc.status; readonly details: string };

/** Makes one unary call with @grpc/grpc-js's generic client, (de)serializing with schemas. */
export function grpcJsUnary<I extends DescMessage, O extends DescMessage>(
  client: grpc.Client,
  path: string,
  input: I,
  output: O,
  request: MessageShape<I>,
  deadlineMs = 20_000,
): Promise<GrpcJsResult<MessageShape<O>>> {
  return new Promise((resolve) => {
    client.makeUnaryRequest<MessageShape<I>, MessageShape<O>>(
      path,
      (message) => Buffer.from(toBinary(input, message)),
      (bytes) => fromBinary(output, bytes),
      request,
      new grpc.Metadata(),
      { deadline: Date.now() + deadlineMs },
      (err, message) => {
        if (err) resolve({ ok: false, code: err.code, details: err.details });
        else if (message === undefined)
          resolve({ ok: false, code: grpc.status.INTERNAL, details: "no message" });
        else resolve({ ok: true, message });
      },
    );
  });
}

/** Opens a plaintext @grpc/grpc-js generic client to a base URL such as http://127.0.0.1:1234. */
export function grpcJsClient(baseUrl: string): grpc.Client {
  return new grpc.Client(new URL(baseUrl).host, grpc.credentials.createInsecure());
}
