import type { Http2ServerRequest } from "node:http2";
import { fromBinary, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import type { HttpBody } from "../../gen/google/api/httpbody_pb.ts";
import type { Authenticate } from "../../kit/auth/auth-interceptor.ts";
import { methodPath } from "../../kit/call-policy.ts";
import type { DeadlinePolicy } from "../../kit/deadline.ts";
import type { Log } from "../../kit/log.ts";
import {
  accountOf,
  addressOf,
  admit,
  clientKeyOf,
  type RateLimits,
} from "../admission/rate-limit.ts";
import {
  type Exchange,
  forwardedHeadersOf,
  type GatewayRequest,
  type GatewayResponse,
  headerReader,
  queryOf,
  setHeaders,
  timeoutOf,
} from "../exchange.ts";
import { sendError } from "../http-error.ts";
import { type RouteTable, rpcName } from "../routing/route-table.ts";
import type { ServiceUpstream } from "../upstream/service-upstream.ts";
import { responseMetadataOf } from "../upstream/upstream.ts";
import { relayDownload } from "./download.ts";
import { bindRequest } from "./request-binding.ts";
import { bindResponse } from "./response-binding.ts";
import { abortResponse, isHttpBody, relayServerStream, relayUpload } from "./streaming.ts";

/** What the REST transcoder needs. */
export interface TranscoderOptions {
  readonly routes: RouteTable;
  /** The upstream of each routed service, by its full name ("protomesh.user.v1.UserService"). */
  readonly upstreams: ReadonlyMap<string, ServiceUpstream>;
  readonly authenticate: Authenticate;
  /** The default and maximum deadlines of calls. */
  readonly deadline: DeadlinePolicy;
  /** The largest JSON request body. */
  readonly maxBodyBytes: number;
  /** The largest content of one upload to a client-streaming RPC. */
  readonly maxUploadBytes: number;
  readonly rateLimits: RateLimits;
  /** How many proxies in front of the gateway append to X-Forwarded-For. */
  readonly trustedProxies: number;
  readonly log: Log;
}

/**
 * Serves one JSON/HTTP request at `path` (the request target without its query); records the
 * RPC it routed to on `exchange`. Never rejects: every failure becomes a JSON error response.
 */
export type Transcoder = (
  req: GatewayRequest,
  res: GatewayResponse,
  path: string,
  exchange: Exchange,
) => Promise<void>;

/**
 * Creates the REST side of the gateway: matches a request to its `google.api.http` route,
 * binds it to the request message, refuses unauthenticated calls at the edge, calls the
 * upstream in binary Connect and answers with the response message in the JSON mapping.
 */
export function createTranscoder(options: TranscoderOptions): Transcoder {
  const { routes, upstreams, authenticate, deadline, maxBodyBytes, maxUploadBytes, log } = options;
  const { rateLimits, trustedProxies } = options;

  return async (req, res, path, exchange) => {
    // The rate-limit headers, on the answer whatever it is once the call was admitted.
    let admitted: Record<string, string> = {};
    try {
      const match = routes.match(req.method ?? "GET", path);
      if (match.kind === "not-found") {
        throw new ConnectError(`no route for ${req.method} ${path}`, Code.NotFound);
      }
      if (match.kind === "method-not-allowed") {
        const err = new ConnectError(
          `${req.method} is not allowed on ${path}; use ${match.allow.join(", ")}`,
          Code.Unimplemented,
        );
        sendError(res, err, { status: 405, headers: { allow: match.allow.join(", ") } });
        return;
      }
      const { route, bindings } = match;
      const method = route.method;
      const rpc = methodPath(method);
      exchange.rpc = rpc;
      if (method.methodKind === "bidi_streaming") {
        const err = new ConnectError(
          `${rpcName(method)} is bidirectional streaming: open a WebSocket on ${path}`,
          Code.InvalidArgument,
        );
        sendError(res, err, {
          status: 426,
          headers: { upgrade: "websocket", connection: "Upgrade" },
        });
        return;
      }
      const upstream = upstreams.get(method.parent.typeName);
      if (upstream === undefined) throw new Error(`no upstream for ${method.parent.typeName}`);
      const headers = forwardedHeadersOf(req);
      // Refused here, the call costs the upstream nothing; it checks the token again anyway.
      const identity = await authenticate(method, headerReader(headers));
      const client = clientKeyOf(identity?.userId, addressOf(req, trustedProxies));
      admitted = await admit(rateLimits.take(client, method));
      const cancel = new AbortController();
      exchange.cancel = cancel;
      const call = { headers, timeoutMs: timeoutOf(deadline, rpc, req), signal: cancel.signal };
      const query = queryOf(req.url);

      if (method.methodKind === "client_streaming") {
        setHeaders(res, admitted);
        await relayUpload(
          { route, upstream, options: call },
          { bindings, query, maxUploadBytes },
          req,
          res,
        );
        return;
      }
      const bytes = hasBody(req) ? await readBody(req, maxBodyBytes) : undefined;
      if (bytes === "too-large") {
        sendError(res, tooLarge(maxBodyBytes), {
          status: 413,
          // The rest of the body may be unread: the connection cannot carry another request.
          headers: req.httpVersionMajor === 1 ? { ...admitted, connection: "close" } : admitted,
        });
        return;
      }
      let body: unknown;
      if (bytes !== undefined && bytes.length > 0) {
        const type = (req.headers["content-type"] ?? "").split(";")[0]?.trim().toLowerCase();
        if (type !== "application/json") {
          const err = new ConnectError(
            `the request body must be JSON: send content-type application/json (got ${type || "none"})`,
            Code.InvalidArgument,
          );
          sendError(res, err, { status: 415, headers: admitted });
          return;
        }
        try {
          body = JSON.parse(bytes.toString("utf8"));
        } catch (err) {
          throw new ConnectError(
            `malformed JSON body: ${(err as Error).message}`,
            Code.InvalidArgument,
          );
        }
      }
      const message = bindRequest(route, bindings, query, body);
      const account = accountOf(method, message);
      if (account !== undefined) {
        Object.assign(admitted, await admit(rateLimits.takeAccount(account, method)));
      }
      if (method.methodKind === "server_streaming") {
        setHeaders(res, admitted);
        const streaming = { route, upstream, options: call };
        if (route.download === undefined) await relayServerStream(streaming, message, req, res);
        else await relayDownload(streaming, route.download, message, req, res);
        return;
      }
      const result = await upstream.unary(method, toBinary(method.input, message), call);
      const output = fromBinary(method.output, result.message);
      const out = responseMetadataOf(result.headers, admitted);
      out["cache-control"] = "no-store";
      if (isHttpBody(method.output)) {
        const { contentType, data } = output as HttpBody;
        out["content-type"] = contentType || "application/octet-stream";
        out["content-length"] = String(data.byteLength);
        res.writeHead(200, out);
        res.end(data);
        return;
      }
      // One write: the headers and the body with its length, no chunked encoding.
      const json = JSON.stringify(bindResponse(route, output));
      out["content-type"] = "application/json";
      out["content-length"] = String(Buffer.byteLength(json));
      res.writeHead(200, out);
      res.end(json);
    } catch (err) {
      const error = ConnectError.from(err);
      if (!(err instanceof ConnectError)) log.error({ err }, "transcoding failed");
      if (res.headersSent) {
        abortResponse(res);
        return;
      }
      // What the error says in its metadata (a challenge, rate-limit headers, the service's
      // own) goes out as headers.
      sendError(res, error, {
        headers: responseMetadataOf(Object.fromEntries(error.metadata), admitted),
      });
    }
  };
}

/**
 * Whether a request has a body to read. An HTTP/1.1 request without Content-Length and
 * Transfer-Encoding has none (RFC 9112 §6.3); an HTTP/2 one has none when its HEADERS frame
 * ended the stream.
 */
function hasBody(req: GatewayRequest): boolean {
  if (req.httpVersionMajor === 2) return !(req as Http2ServerRequest).stream.endAfterHeaders;
  const length = req.headers["content-length"];
  return req.headers["transfer-encoding"] !== undefined || (length !== undefined && length !== "0");
}

function tooLarge(max: number): ConnectError {
  return new ConnectError(`the request body is larger than ${max} bytes`, Code.ResourceExhausted);
}

/**
 * Reads a request body up to `max` bytes. Beyond that it answers "too-large" without buffering
 * the rest; a declared Content-Length says so before any read.
 */
function readBody(req: GatewayRequest, max: number): Promise<Buffer | "too-large"> {
  const declared = Number(req.headers["content-length"] ?? Number.NaN);
  if (declared > max) return Promise.resolve("too-large");
  // A client still sending when the connection closes may never read the 413 (it sees a reset):
  // the excess is read and dropped, up to this much, before answering.
  const lingerBytes = Math.max(1024 * 1024, 8 * max);
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const done = () => {
      req.off("data", onData);
      req.off("end", onEnd);
      req.off("error", onError);
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size <= max) {
        chunks.push(chunk);
        return;
      }
      chunks.length = 0;
      if (size <= max + lingerBytes) return;
      // Paused, not destroyed: the socket must stay up to carry the 413 response.
      done();
      req.pause();
      resolve("too-large");
    };
    const onEnd = () => {
      done();
      if (size > max) resolve("too-large");
      else resolve(chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, size));
    };
    const onError = (err: Error) => {
      done();
      reject(
        new ConnectError("the request body could not be read", Code.Canceled, undefined, [], err),
      );
    };
    req.on("data", onData);
    req.on("end", onEnd);
    req.on("error", onError);
  });
}
