import { randomUUID } from "node:crypto";
import { Code, ConnectError } from "@connectrpc/connect";
import { Health } from "../gen/grpc/health/v1/health_pb.ts";
import { applyDeadline, type DeadlinePolicy } from "../kit/deadline.ts";
import type { InFlight } from "../kit/in-flight.ts";
import type { DualHandler } from "../kit/listener.ts";
import type { Log } from "../kit/log.ts";
import { failBodyOnReset, pathOf } from "../kit/node-http.ts";
import { applyCors, type CorsPolicy, routeMethodsOf } from "./admission/cors.ts";
import type { AdmitNative } from "./admission/native.ts";
import { sendError } from "./http-error.ts";
import type { ServeOps } from "./ops.ts";
import type { RequestLog, Served } from "./request-log.ts";
import { abortResponse } from "./rest/streaming.ts";
import type { Transcoder } from "./rest/transcoder.ts";
import { isTusPath, type TusHandler, tusMethodsOf } from "./rest/tus.ts";
import type { RouteTable } from "./routing/route-table.ts";
import { type NativeProxy, respondError, rpcServiceOf } from "./upstream/native-proxy.ts";
import type { ServiceUpstream } from "./upstream/service-upstream.ts";

type Request = Parameters<DualHandler>[0];
type Response = Parameters<DualHandler>[1];

/** The parts a request can be handed to. */
export interface DispatchParts {
  readonly cors: CorsPolicy;
  readonly routes: RouteTable;
  readonly upstreams: ReadonlyMap<string, ServiceUpstream>;
  readonly serveOps: ServeOps;
  /** The gateway's own health and reflection services. */
  readonly local: (req: Request, res: Response) => void;
  readonly draining: () => boolean;
  readonly proxy: NativeProxy;
  readonly admitNative: AdmitNative;
  readonly deadline: DeadlinePolicy;
  readonly transcode: Transcoder;
  /** The tus resumable upload endpoint. */
  readonly tus: TusHandler;
  readonly inFlight: InFlight;
  readonly requestLog: RequestLog;
  readonly log: Log;
}

/**
 * Creates the gateway's request handler. Each request gets a request id (the client's, or a
 * new one) and is answered, in this order, as a CORS preflight, one of the gateway's own
 * endpoints, a call to its health or reflection, a refusal while draining, a native call
 * passed through to its upstream, a tus upload, or a REST call transcoded. Its end is counted, timed and
 * logged once, and an unfinished upstream call is cancelled when its client goes away.
 */
export function createDispatch(parts: DispatchParts): DualHandler {
  const { cors, routes, upstreams, serveOps, local, draining, proxy, admitNative } = parts;
  const { deadline, transcode, tus, inFlight, requestLog, log } = parts;

  // A native RPC path ("/pkg.Service/Method" of a service the gateway serves) takes POST from
  // browsers (Connect and gRPC-Web); a REST path takes what its routes declare.
  const methodsOf = (path: string, requested: string): string[] => {
    if (isTusPath(path)) return tusMethodsOf(path);
    const service = rpcServiceOf(path);
    const isRpc =
      service !== undefined &&
      (upstreams.has(service) ||
        service === Health.typeName ||
        service.startsWith("grpc.reflection."));
    const methods = routeMethodsOf(routes, path, requested);
    return isRpc && !methods.includes("POST") ? [...methods, "POST"].sort() : methods;
  };

  const route = async (
    req: Request,
    res: Response,
    path: string,
    served: Served,
  ): Promise<void> => {
    // Before everything else: a preflight is answered here and never reaches an upstream.
    if (applyCors(cors, req, res, methodsOf, path)) {
      served.kind = "cors";
      return;
    }
    const ops = req.method === "GET" && serveOps(path, res);
    if (ops !== false) {
      served.kind = "ops";
      await ops;
      return;
    }
    if (path.startsWith("/grpc.health.v1.Health/") || path.startsWith("/grpc.reflection.")) {
      served.kind = "local";
      local(req, res);
      return;
    }
    if (draining()) {
      served.kind = "draining";
      sendError(res, new ConnectError("gateway is shutting down", Code.Unavailable));
      return;
    }
    const upstream = proxy.upstreamOf(req, path);
    if (upstream !== undefined) {
      served.kind = "native";
      served.rpc = path;
      applyDeadline(req.headers, path, deadline);
      try {
        await admitNative(req, res, path);
      } catch (err) {
        respondError(res, req.headers["content-type"] ?? "", ConnectError.from(err));
        return;
      }
      proxy.forward(req, res, upstream);
      return;
    }
    if (isTusPath(path)) {
      served.kind = "tus";
      await tus(req, res, path, served);
      return;
    }
    await transcode(req, res, path, served);
  };

  return (req, res) => {
    const started = performance.now();
    failBodyOnReset(req);
    const path = pathOf(req);
    const given = req.headers["x-request-id"];
    const requestId = typeof given === "string" && given !== "" ? given : randomUUID();
    req.headers["x-request-id"] = requestId;
    res.setHeader("x-request-id", requestId);
    // No answer is ever sniffed into another type: a stored file cannot become a page.
    res.setHeader("x-content-type-options", "nosniff");
    const served: Served = { kind: "rest" };
    inFlight.enter();
    // The one listener of the response: a request's end is counted, measured and logged here.
    res.once("close", () => {
      inFlight.leave();
      if (!res.writableFinished) served.cancel?.abort();
      requestLog.record(req, res, {
        path,
        requestId,
        served,
        durationMs: performance.now() - started,
      });
    });
    route(req, res, path, served).catch((err: unknown) => {
      log.error({ err, path }, "request failed");
      if (!res.headersSent) sendError(res, new ConnectError("internal error", Code.Internal));
      else abortResponse(res);
    });
  };
}
