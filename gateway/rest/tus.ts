// The tus 1.0 protocol written here rather than with @tus/server: that server keeps the bytes
// in a data store of its own and answers with its own statuses and plain-text errors, while
// here each tus request is one call of the file service's upload-session RPCs, admitted and
// answered like every REST call of the gateway. What tus adds on top is a handful of headers.
import type { DescMessage, DescMethod, MessageInitShape, MessageShape } from "@bufbuild/protobuf";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  AppendUploadRequestSchema,
  FileService,
  type UploadSession,
} from "../../gen/protomesh/file/v1/file_pb.ts";
import type { Authenticate } from "../../kit/auth/auth-interceptor.ts";
import { methodPath } from "../../kit/call-policy.ts";
import type { DeadlinePolicy } from "../../kit/deadline.ts";
import type { Log } from "../../kit/log.ts";
import { clientWentAway } from "../../kit/node-http.ts";
import { addressOf, admit, clientKeyOf, type RateLimits } from "../admission/rate-limit.ts";
import {
  type Exchange,
  forwardedHeadersOf,
  type GatewayRequest,
  type GatewayResponse,
  headerReader,
  setHeaders,
  timeoutOf,
} from "../exchange.ts";
import { httpStatusOf, sendError } from "../http-error.ts";
import type { ServiceUpstream } from "../upstream/service-upstream.ts";
import { type CallOptions, responseMetadataOf } from "../upstream/upstream.ts";
import { lastMessageOf } from "./streaming.ts";
import {
  fileMetadataOf,
  formatUploadMetadata,
  offsetOctetStream,
  parseByteCount,
  parseUploadMetadata,
  tusExtensions,
  tusHeader,
  tusVersion,
} from "./tus-headers.ts";

/** The path under which the gateway serves tus uploads: POST here, the rest on `<prefix>/<id>`. */
export const tusPrefix = "/v1/tus";

/** What the tus endpoint needs: the same admission and upstream as the REST routes. */
export interface TusOptions {
  /** The upstream of each routed service; uploads go to the file service's. */
  readonly upstreams: ReadonlyMap<string, ServiceUpstream>;
  readonly authenticate: Authenticate;
  /** The default and maximum deadlines of calls. */
  readonly deadline: DeadlinePolicy;
  /** The largest upload, announced as Tus-Max-Size. */
  readonly maxUploadBytes: number;
  readonly rateLimits: RateLimits;
  /** How many proxies in front of the gateway append to X-Forwarded-For. */
  readonly trustedProxies: number;
  readonly log: Log;
}

/**
 * Serves one tus request at `path` (see isTusPath); records the RPC it called on `exchange`.
 * Never rejects: every failure becomes a JSON error response.
 */
export type TusHandler = (
  req: GatewayRequest,
  res: GatewayResponse,
  path: string,
  exchange: Exchange,
) => Promise<void>;

/** Whether a request path is the tus endpoint's. */
export function isTusPath(path: string): boolean {
  return path === tusPrefix || path.startsWith(`${tusPrefix}/`);
}

/** The methods a tus path accepts: creation on the collection, the rest on an upload. */
export function tusMethodsOf(path: string): string[] {
  const target = targetOf(path);
  if (target === "collection") return ["OPTIONS", "POST"];
  return target === undefined ? [] : ["DELETE", "HEAD", "OPTIONS", "PATCH"];
}

/**
 * What a tus path names: "/v1/tus" and "/v1/tus/" the collection, "/v1/tus/<id>" the upload
 * with that id (one segment); undefined for anything deeper.
 */
function targetOf(path: string): "collection" | { readonly id: string } | undefined {
  const rest = path.slice(tusPrefix.length + 1);
  if (rest === "") return "collection";
  return rest.includes("/") ? undefined : { id: rest };
}

const { createUploadSession, getUploadSession, appendUpload, cancelUploadSession } =
  FileService.method;

/**
 * Creates the gateway's tus 1.0 endpoint (core protocol, creation, termination, expiration)
 * over the file service's upload sessions: POST creates one, HEAD reads its offset, PATCH
 * streams content into AppendUpload, DELETE cancels it, OPTIONS describes the server. Tus
 * clients (tus-js-client, Uppy) work against it unchanged.
 */
export function createTusHandler(options: TusOptions): TusHandler {
  const { upstreams, log } = options;
  return async (req, res, path, exchange) => {
    res.setHeader(tusHeader.resumable, tusVersion);
    try {
      const method = req.method ?? "GET";
      const target = targetOf(path);
      if (target === undefined) throw new ConnectError(`no upload at ${path}`, Code.NotFound);
      const allowed = tusMethodsOf(path);
      if (!allowed.includes(method)) {
        const err = new ConnectError(
          `${method} is not allowed on ${path}; use ${allowed.join(", ")}`,
          Code.Unimplemented,
        );
        sendError(res, err, { status: 405, headers: { allow: allowed.join(", ") } });
        return;
      }
      // A client asks what the server supports without knowing its version (tus 1.0 §OPTIONS).
      if (method === "OPTIONS") {
        res.writeHead(204, {
          [tusHeader.version]: tusVersion,
          [tusHeader.extension]: tusExtensions,
          [tusHeader.maxSize]: String(options.maxUploadBytes),
        });
        res.end();
        return;
      }
      if (req.headers[tusHeader.resumable] !== tusVersion) {
        const err = new ConnectError(
          `this server speaks tus ${tusVersion}: send ${tusHeader.resumable}: ${tusVersion}`,
          Code.FailedPrecondition,
        );
        sendError(res, err, { status: 412, headers: { [tusHeader.version]: tusVersion } });
        return;
      }
      const upstream = upstreams.get(FileService.typeName);
      if (upstream === undefined) {
        throw new ConnectError(`no route for ${method} ${path}`, Code.NotFound);
      }
      const call: TusCall = { req, res, exchange, upstream, options };
      if (target === "collection") await createUpload(call);
      else if (method === "HEAD") await headUpload(call, target.id);
      else if (method === "PATCH") await patchUpload(call, target.id);
      else await terminateUpload(call, target.id);
    } catch (err) {
      if (!(err instanceof ConnectError)) log.error({ err }, "tus request failed");
      if (res.headersSent) {
        res.destroy();
        return;
      }
      answerError(req, res, ConnectError.from(err));
    }
  };
}

/** One tus request being served. */
interface TusCall {
  readonly req: GatewayRequest;
  readonly res: GatewayResponse;
  readonly exchange: Exchange;
  readonly upstream: ServiceUpstream;
  readonly options: TusOptions;
}

/**
 * Admits a call of `method` as the REST routes do: the token, then the client's rate limit,
 * whose headers go on the answer. Returns the upstream call's options, with the deadline and
 * the forwarded headers.
 */
async function admitCall(call: TusCall, method: DescMethod): Promise<CallOptions> {
  const { req, res, exchange, options } = call;
  const rpc = methodPath(method);
  exchange.rpc = rpc;
  const headers = forwardedHeadersOf(req);
  const identity = await options.authenticate(method, headerReader(headers));
  const client = clientKeyOf(identity?.userId, addressOf(req, options.trustedProxies));
  setHeaders(res, await admit(options.rateLimits.take(client, method)));
  return { headers, timeoutMs: timeoutOf(options.deadline, rpc, req) };
}

/** Calls a unary method with a request that can be cancelled when its client goes away. */
async function unary<I extends DescMessage, O extends DescMessage>(
  call: TusCall,
  method: DescMethod & { input: I; output: O },
  request: MessageInitShape<I>,
): Promise<MessageShape<O>> {
  const options = await admitCall(call, method);
  const cancel = new AbortController();
  call.exchange.cancel = cancel;
  const body = toBinary(method.input, create(method.input, request));
  const result = await call.upstream.unary(method, body, { ...options, signal: cancel.signal });
  setHeaders(call.res, responseMetadataOf(result.headers));
  return fromBinary(method.output, result.message);
}

/** POST: creates an upload session of Upload-Length bytes, described by Upload-Metadata. */
async function createUpload(call: TusCall): Promise<void> {
  const { req, res, options } = call;
  const deferred = req.headers[tusHeader.uploadDeferLength] !== undefined;
  if (deferred && req.headers[tusHeader.uploadLength] === undefined) {
    throw new ConnectError(
      `${tusHeader.uploadDeferLength} is not supported: send ${tusHeader.uploadLength}`,
      Code.InvalidArgument,
    );
  }
  const size = parseByteCount(tusHeader.uploadLength, req.headers[tusHeader.uploadLength]);
  if (size > options.maxUploadBytes) {
    throw new ConnectError(
      `the upload is larger than ${options.maxUploadBytes} bytes (${tusHeader.maxSize})`,
      Code.ResourceExhausted,
    );
  }
  const metadata = fileMetadataOf(parseUploadMetadata(stringOf(req, tusHeader.uploadMetadata)));
  const session = await unary(call, createUploadSession, {
    metadata: { ...metadata, sizeBytes: BigInt(size) },
  });
  res.writeHead(201, { location: `${tusPrefix}/${session.id}`, ...sessionHeadersOf(session) });
  res.end();
}

/** HEAD: where the upload continues, its length, expiry and metadata; never cached. */
async function headUpload(call: TusCall, id: string): Promise<void> {
  const session = await unary(call, getUploadSession, { id });
  const metadata = formatUploadMetadata({
    filename: session.filename,
    filetype: session.contentType,
  });
  call.res.writeHead(200, {
    [tusHeader.uploadOffset]: String(session.offset),
    [tusHeader.uploadLength]: String(session.sizeBytes),
    ...sessionHeadersOf(session),
    ...(metadata === "" ? {} : { [tusHeader.uploadMetadata]: metadata }),
    "cache-control": "no-store",
  });
  call.res.end();
}

/** DELETE: cancels the upload and deletes what it received. */
async function terminateUpload(call: TusCall, id: string): Promise<void> {
  await unary(call, cancelUploadSession, { id });
  call.res.writeHead(204, {});
  call.res.end();
}

/**
 * PATCH: streams the body into AppendUpload from Upload-Offset, chunk by chunk as it arrives
 * and no faster than the upstream takes it, and answers the new offset. A client that goes
 * away mid-body ends the stream as if the body had ended there: the service keeps what arrived
 * and the client resumes from it; nothing more is answered.
 */
async function patchUpload(call: TusCall, id: string): Promise<void> {
  const { req, res, upstream, options } = call;
  const type = (req.headers["content-type"] ?? "").split(";")[0]?.trim().toLowerCase();
  if (type !== offsetOctetStream) {
    const err = new ConnectError(
      `a PATCH body must be sent as content-type ${offsetOctetStream} (got ${type || "none"})`,
      Code.InvalidArgument,
    );
    sendError(res, err, { status: 415, headers: closeUnlessRead(req) });
    return;
  }
  const offset = parseByteCount(tusHeader.uploadOffset, req.headers[tusHeader.uploadOffset]);
  // No cancellation by the client: its going away must end the stream, not abort it.
  const stream = upstream.stream(appendUpload, await admitCall(call, appendUpload));
  // Read from the start: an upstream that refuses the offset stops the body at once.
  const answer = lastMessageOf(stream.responses);
  answer.catch((err: unknown) => stream.cancel(ConnectError.from(err)));
  const send = (payload: AppendPayload) =>
    stream.send(
      toBinary(AppendUploadRequestSchema, create(AppendUploadRequestSchema, { payload })),
    );
  try {
    await send({ case: "start", value: { id, offset: BigInt(offset) } });
    for await (const chunk of readUntilGone(req)) await send({ case: "chunk", value: chunk });
  } catch (err) {
    const error = ConnectError.from(err);
    stream.cancel(error);
    throw error;
  }
  stream.end();
  const response = await answer.catch((err: unknown) => {
    if (!clientWentAway(req)) throw err;
    options.log.info({ err, id }, "the file service refused an interrupted tus upload's content");
    return undefined;
  });
  if (clientWentAway(req)) {
    res.destroy();
    return;
  }
  if (response === undefined) {
    throw new ConnectError("the upstream answered the upload with no message", Code.Internal);
  }
  const session = fromBinary(appendUpload.output, response);
  setHeaders(res, responseMetadataOf(await stream.headers));
  res.writeHead(204, {
    [tusHeader.uploadOffset]: String(session.offset),
    ...sessionHeadersOf(session),
  });
  res.end();
}

type AppendPayload = NonNullable<MessageInitShape<typeof AppendUploadRequestSchema>["payload"]>;

/**
 * The chunks of a request body until it ends, or until its client goes away: a body cut short
 * ends early rather than failing (see clientWentAway).
 */
async function* readUntilGone(req: GatewayRequest): AsyncGenerator<Buffer> {
  try {
    for await (const chunk of req) yield chunk as Buffer;
  } catch (err) {
    if (!clientWentAway(req)) throw err;
  }
}

function stringOf(req: GatewayRequest, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value.join(",") : value;
}

/** Upload-Expires, an HTTP date (tus 1.0, expiration extension), when the session has one. */
/**
 * What an answer says of a session besides its offset: when it expires, and, once complete, the
 * id of the file it became (`File-Id`, not a tus header: how a client finds its file).
 */
function sessionHeadersOf(session: UploadSession): Record<string, string> {
  return {
    ...(session.expireTime === undefined
      ? {}
      : { [tusHeader.uploadExpires]: timestampDate(session.expireTime).toUTCString() }),
    ...(session.file === undefined ? {} : { "file-id": session.file.id }),
  };
}

// An HTTP/1.1 client may still be sending a body the gateway will not read: the connection
// cannot carry another request.
function closeUnlessRead(req: GatewayRequest): Record<string, string> {
  return req.httpVersionMajor === 1 && !req.complete ? { connection: "close" } : {};
}

/**
 * Answers an error with the gateway's JSON error body and the status tus gives its code: a
 * wrong offset (FailedPrecondition) is 409, a size or quota beyond the limit 413; a rate
 * limit, whose ResourceExhausted says when to retry, stays 429.
 */
function answerError(req: GatewayRequest, res: GatewayResponse, error: ConnectError): void {
  const headers = responseMetadataOf(Object.fromEntries(error.metadata));
  let status = httpStatusOf(error.code);
  if (error.code === Code.FailedPrecondition) status = 409;
  if (error.code === Code.ResourceExhausted && headers["retry-after"] === undefined) status = 413;
  sendError(res, error, { status, headers: { ...headers, ...closeUnlessRead(req) } });
}
