import http2 from "node:http2";
import type { DescService } from "@bufbuild/protobuf";
import { Code, ConnectError, type Interceptor, type ServiceImpl } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { Health } from "../gen/grpc/health/v1/health_pb.ts";
import { refusedHeader } from "./balance/retryable.ts";
import { methodTimeouts } from "./call-policy.ts";
import type { ServerConfig } from "./config.ts";
import { applyDeadline, type DeadlinePolicy, longestDeadlineMs } from "./deadline.ts";
import { createErrorInterceptor } from "./error-interceptor.ts";
import { createHealth, type HealthState } from "./health.ts";
import { createInFlight } from "./in-flight.ts";
import type { DualHandler } from "./listener.ts";
import type { Log } from "./log.ts";
import { createMetrics, type Metrics } from "./metrics.ts";
import { failBodyOnReset, type NodeRequest, type NodeResponse, pathOf } from "./node-http.ts";
import { createNulCheckInterceptor } from "./nul-check-interceptor.ts";
import { createObserveInterceptor } from "./observe-interceptor.ts";
import { registerReflection } from "./reflection.ts";
import { advertiseHost } from "./registry/config.ts";
import { openRegistry } from "./registry/open-registry.ts";
import type { Registry } from "./registry/registry.ts";
import { createServing } from "./serving.ts";
import { respondUnknownRoute } from "./unknown-route.ts";

/** A service descriptor with its implementation; methods left out answer Unimplemented. */
export interface ServiceBinding {
  readonly service: DescService;
  readonly impl: Partial<ServiceImpl<DescService>>;
}

/** Pairs a generated service descriptor with its (possibly partial) implementation, typed. */
export function bindService<S extends DescService>(
  service: S,
  impl: Partial<ServiceImpl<S>>,
): ServiceBinding {
  return { service, impl: impl as Partial<ServiceImpl<DescService>> };
}

/** What a protomesh server needs: its configuration, its log and what it serves. */
export interface ServerOptions {
  /** Address, limits, deadlines and grace period (see serverConfigShape). */
  readonly config: ServerConfig;
  readonly log: Log;
  readonly services: readonly ServiceBinding[];
  /**
   * Interceptors for the bound services, inside logging and error conversion, such as
   * authentication. Health and reflection do not get them: they are open to every caller.
   */
  readonly interceptors?: readonly Interceptor[];
  readonly metrics?: Metrics;
  /**
   * Where the bound services are registered (by full protobuf name) once the server listens,
   * and deregistered before it drains; by default the one the configuration asks for.
   */
  readonly registry?: Registry;
}

/** A running (or ready to run) protomesh server on one port. */
export interface Server {
  readonly health: HealthState;
  readonly metrics: Metrics;
  /** Starts listening and reports SERVING; resolves with the bound port. */
  listen(): Promise<number>;
  /**
   * Drains: NOT_SERVING at once, new calls refused with Unavailable, in-flight calls given
   * the grace period, then every connection closed.
   */
  close(): Promise<void>;
}

// Health and reflection keep answering while the server drains, so that load balancers see
// NOT_SERVING and long-lived Watch streams do not hold the shutdown back.
const alwaysOpen = (path: string) =>
  path.startsWith("/grpc.health.v1.Health/") || path.startsWith("/grpc.reflection.");

/** True for a gRPC call (not gRPC-Web) over HTTP/2. */
function isGrpcOverHttp2(req: NodeRequest): req is http2.Http2ServerRequest {
  const type = req.headers["content-type"] ?? "";
  return (
    req instanceof http2.Http2ServerRequest &&
    (type === "application/grpc" || /^application\/grpc[+;]/.test(type))
  );
}

/**
 * Creates a server that accepts gRPC (HTTP/2 cleartext), Connect and gRPC-Web (HTTP/1.1 and
 * HTTP/2) on one port, plus /healthz, /readyz and /metrics, with health and reflection.
 */
export function createServer(options: ServerOptions): Server {
  const { config, log } = options;
  const deadline: DeadlinePolicy = {
    defaultMs: config.DEFAULT_DEADLINE_MS,
    maxMs: config.MAX_DEADLINE_MS,
    methodDefaults: methodTimeouts(options.services.map((b) => b.service)),
  };
  const metrics = options.metrics ?? createMetrics();
  const serviceNames = options.services.map((b) => b.service.typeName);
  const health = createHealth(serviceNames);
  const shutdown = new AbortController();
  const inFlight = createInFlight();
  // Static (no-op) unless CONSUL_HTTP_ADDR is set; a registry passed in stays its owner's.
  const registry = options.registry ?? openRegistry(config, log);

  const baseInterceptors = [createObserveInterceptor(log, metrics), createErrorInterceptor(log)];
  // Innermost, so that a caller the service's own interceptors refuse learns nothing more.
  const serviceInterceptors = [
    ...baseInterceptors,
    ...(options.interceptors ?? []),
    createNulCheckInterceptor(),
  ];
  const connectHandler = connectNodeAdapter({
    routes(router) {
      for (const binding of options.services) {
        // Per-service options replace the router's, so the full chain is given here.
        router.service(binding.service, binding.impl, { interceptors: serviceInterceptors });
      }
      health.register(router);
      registerReflection(router, [...options.services.map((b) => b.service), Health]);
    },
    interceptors: baseInterceptors,
    readMaxBytes: config.MAX_MESSAGE_BYTES,
    writeMaxBytes: config.MAX_MESSAGE_BYTES,
    // Each call's deadline is already within its method's cap (applyDeadline).
    maxTimeoutMs: longestDeadlineMs(deadline),
    shutdownSignal: shutdown.signal,
    requestGate(ctx) {
      if (serving.draining && ctx.service.typeName !== Health.typeName) {
        throw new ConnectError("server is shutting down", Code.Unavailable, {
          [refusedHeader]: "draining",
        });
      }
    },
    fallback: (req, res) => {
      void serveOps(req, res);
    },
  });

  async function serveOps(req: NodeRequest, res: NodeResponse): Promise<void> {
    const path = pathOf(req);
    if (req.method === "GET" && path === "/healthz") return send(res, 200, "ok\n");
    if (req.method === "GET" && path === "/readyz") {
      return health.serving ? send(res, 200, "ready\n") : send(res, 503, "not ready\n");
    }
    if (req.method === "GET" && path === "/metrics") {
      const body = await metrics.registry.metrics();
      return send(res, 200, body, metrics.registry.contentType);
    }
    respondUnknownRoute(req, res);
  }

  const handle: DualHandler = (req, res) => {
    const path = pathOf(req);
    // A draining server resets a new gRPC call with REFUSED_STREAM: gRPC clients know that
    // nothing ran and send it again (RFC 9113 §8.7). Connect and gRPC-Web calls are refused by
    // the request gate below, with a header that says the same to protomesh's clients.
    if (serving.draining && !alwaysOpen(path) && isGrpcOverHttp2(req)) {
      // Node reports the reset as an error of the stream on this side too: it is the answer.
      req.stream.on("error", () => {});
      req.stream.close(http2.constants.NGHTTP2_REFUSED_STREAM);
      return;
    }
    applyDeadline(req.headers, path, deadline);
    failBodyOnReset(req);
    if (!alwaysOpen(path)) {
      inFlight.enter();
      res.once("close", inFlight.leave);
    }
    connectHandler(req, res);
  };

  const serving = createServing({
    config,
    log,
    health,
    inFlight,
    handle,
    // Calls still running past the grace period are cancelled: their handlers see the signal
    // and answer Unavailable before the connections go.
    abandon: () => shutdown.abort(new ConnectError("server is shutting down", Code.Unavailable)),
    announce: {
      register: (port) =>
        registry.register({ services: serviceNames, host: advertiseHost(config), port }),
      deregister: () => registry.deregister(),
    },
    release: () => {
      if (options.registry === undefined) registry.close();
    },
  });

  return {
    health,
    metrics,
    listen: () => serving.listen(),
    close: () => serving.close(),
  };
}

function send(
  res: NodeResponse,
  status: number,
  body: string,
  contentType = "text/plain; charset=utf-8",
): void {
  res.writeHead(status, { "content-type": contentType, "cache-control": "no-store" });
  res.end(body);
}
