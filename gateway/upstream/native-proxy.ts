import type http2 from "node:http2";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Log } from "../../kit/log.ts";
import { cancellerOf } from "../../kit/node-http.ts";
import type { GatewayRequest, GatewayResponse } from "../exchange.ts";
import { codeName, httpStatusOfCode } from "./connect-wire.ts";
import type { ServiceUpstream } from "./service-upstream.ts";
import type { Upstream } from "./upstream.ts";

/** Forwards one native Connect, gRPC or gRPC-Web request to its upstream. */
export interface NativeProxy {
  /** The upstream of a request for `/<package.Service>/<Method>` in an RPC protocol, if any. */
  upstreamOf(req: GatewayRequest, path: string): ServiceUpstream | undefined;
  /**
   * Streams the request to an instance of the upstream service and its response (with
   * trailers) back; answers Unavailable in the client's protocol when no instance can take it.
   */
  forward(req: GatewayRequest, res: GatewayResponse, upstream: ServiceUpstream): void;
}

/** What the native proxy needs: the upstream of each routed service and a log. */
export interface NativeProxyOptions {
  readonly upstreams: ReadonlyMap<string, ServiceUpstream>;
  readonly log: Log;
}

// RFC 9110 §7.6.1 and RFC 9113 §8.2.2: connection-specific headers never cross a hop.
const hopByHop = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "transfer-encoding",
  "upgrade",
  "host",
  "http2-settings",
  "te",
]);

const rpcContentType = /^application\/(grpc|grpc-web|connect\+|proto|json)/i;

/** The service of a native RPC path ("/package.Service/Method"), or undefined for other paths. */
export function rpcServiceOf(path: string): string | undefined {
  return /^\/([A-Za-z_][\w.]*)\/[A-Za-z_]\w*$/.exec(path)?.[1];
}

/**
 * Creates the pass-through for generated clients: the gateway does not decode their messages,
 * it relays bytes on the upstream's pooled HTTP/2 session, with backpressure both ways.
 */
export function createNativeProxy(options: NativeProxyOptions): NativeProxy {
  const { upstreams, log } = options;

  function upstreamOf(req: GatewayRequest, path: string): ServiceUpstream | undefined {
    const service = rpcServiceOf(path);
    if (service === undefined) return undefined;
    const upstream = upstreams.get(service);
    if (upstream === undefined) return undefined;
    const type = req.headers["content-type"] ?? "";
    if (rpcContentType.test(type)) return upstream;
    // Connect's GET form of side-effect-free unary calls carries no content type.
    if (req.method === "GET" && (req.url ?? "").includes("connect=v1")) return upstream;
    return undefined;
  }

  function forward(req: GatewayRequest, res: GatewayResponse, service: ServiceUpstream): void {
    let held: ReturnType<ServiceUpstream["acquire"]>;
    try {
      held = service.acquire();
    } catch (err) {
      respondUnavailable(res, req.headers["content-type"] ?? "", service.service, err);
      return;
    }
    forwardTo(req, res, held.upstream, held.done);
  }

  function forwardTo(
    req: GatewayRequest,
    res: GatewayResponse,
    upstream: Upstream,
    done: (failed: boolean) => void,
  ): void {
    const type = req.headers["content-type"] ?? "";
    const isGrpc = /^application\/grpc(?!-web)/i.test(type);
    if (isGrpc && req.httpVersionMajor !== 2) {
      done(false);
      res.writeHead(505, { "content-type": "text/plain; charset=utf-8" });
      res.end("gRPC needs HTTP/2; use gRPC-Web or Connect over HTTP/1.1\n");
      return;
    }
    const headers: http2.OutgoingHttpHeaders = {
      ":method": req.method ?? "POST",
      ":path": req.url ?? "/",
    };
    for (const [name, value] of Object.entries(req.headers)) {
      if (value === undefined || name.startsWith(":") || hopByHop.has(name)) continue;
      headers[name] = value;
    }
    // gRPC servers may insist on it (gRPC over HTTP/2 spec, "Requests").
    if (isGrpc) headers.te = "trailers";

    let stream: http2.ClientHttp2Stream;
    try {
      stream = upstream.session().request(headers);
    } catch (err) {
      log.warn({ upstream: upstream.baseUrl, err }, "upstream session unavailable");
      done(true);
      respondUnavailable(res, type, upstream.service, err);
      return;
    }
    // Closed without response headers or an error (the client went away): no verdict.
    stream.once("close", () => done(false));
    // The client went away: cancel the upstream call rather than let it run to its deadline.
    const cancel = cancellerOf(stream);
    res.once("close", () => {
      if (!stream.closed) cancel();
    });
    req.pipe(stream);
    stream.on("response", (upstreamHeaders) => {
      const status = Number(upstreamHeaders[":status"]);
      // The instance is judged by its response headers: a gateway error status, or a gRPC
      // trailers-only failure of the server's making, counts against it.
      const grpcStatus = Number(upstreamHeaders["grpc-status"] ?? Number.NaN);
      done(status >= 502 || failingGrpcStatuses.has(grpcStatus));
      const out: Record<string, string | string[]> = {};
      for (const [name, value] of Object.entries(upstreamHeaders)) {
        if (value === undefined || name.startsWith(":") || hopByHop.has(name)) continue;
        out[name] = Array.isArray(value) ? value : String(value);
      }
      res.writeHead(status, out);
      stream.pipe(res);
    });
    stream.on("trailers", (trailers) => {
      // Only HTTP/2 responses carry trailers here: gRPC-Web and Connect put theirs in the body.
      if (req.httpVersionMajor !== 2) return;
      const out: Record<string, string> = {};
      for (const [name, value] of Object.entries(trailers)) {
        if (value !== undefined && !name.startsWith(":")) out[name] = String(value);
      }
      res.addTrailers(out);
    });
    stream.on("error", (err) => {
      log.warn({ upstream: upstream.baseUrl, err }, "upstream stream failed");
      done(true);
      if (res.headersSent) res.destroy();
      else respondUnavailable(res, type, upstream.service, err);
    });
  }

  return { upstreamOf, forward };
}

const failingGrpcStatuses = new Set([
  Code.Unknown,
  Code.DeadlineExceeded,
  Code.Internal,
  Code.Unavailable,
]);

/** Tells the client in its own protocol that the upstream could not be reached. */
function respondUnavailable(
  res: GatewayResponse,
  contentType: string,
  service: string,
  cause: unknown,
): void {
  // A breaker's or balancer's refusal says why; a connection failure says no more than this.
  const error =
    cause instanceof ConnectError && cause.code === Code.Unavailable
      ? cause
      : new ConnectError(`service ${service} is unavailable`, Code.Unavailable);
  respondError(res, contentType, error);
}

/**
 * Answers a native call with an error in the client's own protocol, the error's metadata as
 * headers: a gRPC or gRPC-Web trailers-only response, else a Connect error.
 */
export function respondError(res: GatewayResponse, contentType: string, error: ConnectError): void {
  if (res.headersSent) return;
  const headers: Record<string, string> = {};
  error.metadata.forEach((value, name) => {
    headers[name] = value;
  });
  if (/^application\/grpc/i.test(contentType)) {
    // A trailers-only response: the status travels in the headers (gRPC and gRPC-Web alike).
    res.writeHead(200, {
      ...headers,
      "content-type": contentType.split(";")[0] ?? contentType,
      "grpc-status": String(error.code),
      "grpc-message": encodeURIComponent(error.rawMessage),
    });
    res.end();
    return;
  }
  res.writeHead(httpStatusOfCode(error.code), { ...headers, "content-type": "application/json" });
  res.end(JSON.stringify({ code: codeName(error.code), message: error.rawMessage }));
}
