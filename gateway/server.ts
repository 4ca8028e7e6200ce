import { randomUUID } from "node:crypto";
import { type DescService, hasOption } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { Counter, Histogram } from "prom-client";
import { http } from "../gen/google/api/annotations_pb.ts";
import { Health } from "../gen/grpc/health/v1/health_pb.ts";
import { FileService } from "../gen/protomesh/file/v1/file_pb.ts";
import { InferenceService } from "../gen/protomesh/inference/v1/inference_pb.ts";
import { TaskService } from "../gen/protomesh/task/v1/task_pb.ts";
import { UserService } from "../gen/protomesh/user/v1/user_pb.ts";
import { createAuthenticator } from "../kit/auth/auth-interceptor.ts";
import { createRemoteVerifier } from "../kit/auth/remote-verifier.ts";
import { resiliencePolicyOf } from "../kit/balance/policy.ts";
import { methodPath, methodTimeouts } from "../kit/call-policy.ts";
import { applyDeadline, type DeadlinePolicy } from "../kit/deadline.ts";
import { createHealth } from "../kit/health.ts";
import { createInFlight } from "../kit/in-flight.ts";
import type { DualHandler } from "../kit/listener.ts";
import type { Log } from "../kit/log.ts";
import { createMetrics } from "../kit/metrics.ts";
import { pathOf } from "../kit/node-http.ts";
import { registerReflection } from "../kit/reflection.ts";
import { openRegistry } from "../kit/registry/open-registry.ts";
import type { Watcher } from "../kit/registry/registry.ts";
import type { Runnable } from "../kit/run-process.ts";
import { createServing } from "../kit/serving.ts";
import { applyCors, createCorsPolicy, routeMethodsOf } from "./admission/cors.ts";
import { addressOf, admit, clientKeyOf, createRateLimits } from "./admission/rate-limit.ts";
import type { GatewayConfig } from "./config.ts";
import { createDocs } from "./docs/docs.ts";
import {
  type Exchange,
  forwardedHeadersOf,
  type GatewayResponse,
  headerReader,
  setHeaders,
} from "./exchange.ts";
import { sendError } from "./http-error.ts";
import { createResilienceMetrics } from "./resilience-metrics.ts";
import { createTranscoder } from "./rest/transcoder.ts";
import { createWebSocketGateway } from "./rest/websocket.ts";
import { createRouteTable } from "./routing/route-table.ts";
import { createNativeProxy, respondError, rpcServiceOf } from "./upstream/native-proxy.ts";
import { createServiceUpstream, type ServiceUpstream } from "./upstream/service-upstream.ts";

/** A service the gateway routes, and the base URLs of the instances that serve it. */
export interface GatewayTarget {
  readonly service: DescService;
  readonly urls: readonly string[];
}

/** What the gateway is built from. */
export interface GatewayServerOptions {
  readonly config: GatewayConfig;
  readonly log: Log;
  /** The services to route; the mesh's four services at their configured URLs by default. */
  readonly targets?: readonly GatewayTarget[];
}

/** The mesh's services at the URLs of the gateway's configuration. */
export function meshTargets(config: GatewayConfig): GatewayTarget[] {
  return [
    { service: UserService, urls: config.USER_SERVICE_URL },
    { service: TaskService, urls: config.TASK_SERVICE_URL },
    { service: FileService, urls: config.FILE_SERVICE_URL },
    { service: InferenceService, urls: config.INFERENCE_SERVICE_URL },
  ];
}

/**
 * Creates the gateway: REST routes of every annotated RPC, native Connect/gRPC/gRPC-Web
 * pass-through, reflection of all routed services, its own health, /healthz, /readyz and
 * /metrics, all on one port.
 */
export function createGatewayServer(options: GatewayServerOptions): Runnable {
  const { config, log } = options;
  const targets = options.targets ?? meshTargets(config);
  const services = targets.map((target) => target.service);
  const metrics = createMetrics();
  const resilience = createResilienceMetrics(metrics.registry);
  // The instances of each service: the configured URLs (static), or what Consul reports
  // healthy when CONSUL_HTTP_ADDR is set, followed as they change.
  const registry = openRegistry(
    config,
    log,
    Object.fromEntries(targets.map(({ service, urls }) => [service.typeName, urls])),
  );
  const policy = resiliencePolicyOf(config);
  const upstreams = new Map<string, ServiceUpstream>();
  const watchers: Watcher[] = [];
  for (const { service } of targets) {
    const upstream = createServiceUpstream(service.typeName, [], {
      maxResponseBytes: config.MAX_MESSAGE_BYTES,
      log,
      policy,
      events: resilience,
    });
    upstreams.set(service.typeName, upstream);
    watchers.push(
      registry.watch(service.typeName, (instances) =>
        upstream.update(instances.map((instance) => instance.address)),
      ),
    );
  }

  const deadline: DeadlinePolicy = {
    defaultMs: config.DEFAULT_DEADLINE_MS,
    maxMs: config.MAX_DEADLINE_MS,
    methodDefaults: methodTimeouts(services),
  };
  const requests = new Counter({
    name: "gateway_http_requests_total",
    help: "HTTP requests the gateway answered, by kind (rest, native, ops), RPC and status.",
    labelNames: ["kind", "rpc", "status"],
    registers: [metrics.registry],
  });
  const latency = new Histogram({
    name: "gateway_http_request_duration_seconds",
    help: "Time from request to the end of the response, by kind and RPC.",
    labelNames: ["kind", "rpc"],
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [metrics.registry],
  });
  const health = createHealth([]);
  const routes = createRouteTable(services);
  // Tokens are checked with keys fetched from the user service's instances in the registry.
  const verifier = createRemoteVerifier(config, log, { registry, policy });
  const authenticate = createAuthenticator({ verifier, log });
  const rateLimits = createRateLimits(config, { log, registry: metrics.registry });
  const transcode = createTranscoder({
    routes,
    upstreams,
    authenticate,
    deadline,
    maxBodyBytes: config.MAX_BODY_BYTES,
    maxUploadBytes: config.MAX_UPLOAD_BYTES,
    rateLimits,
    trustedProxies: config.RATE_LIMIT_TRUSTED_PROXIES,
    log,
  });
  const upgrade = createWebSocketGateway({
    routes,
    upstreams,
    authenticate,
    deadline,
    maxMessageBytes: config.MAX_BODY_BYTES,
    rateLimits,
    trustedProxies: config.RATE_LIMIT_TRUSTED_PROXIES,
    draining: () => serving.draining,
    log,
  });
  const proxy = createNativeProxy({ upstreams, log });
  // Reflection describes every routed service, so buf curl and grpcurl work at the gateway.
  const local = connectNodeAdapter({
    routes(router) {
      health.register(router);
      registerReflection(router, [...services, Health]);
    },
    maxTimeoutMs: config.MAX_DEADLINE_MS,
  });

  // A native call is limited like its REST form: per verified subject, else per client address.
  // The service checks the token itself, so one that does not verify here only loses its subject.
  // The gateway serves, natively too, the RPCs the contract gives a google.api.http rule; one
  // without (UserService.ListRevocations) is for the mesh's own processes only.
  const methods = new Map(
    services.flatMap((s) =>
      s.methods.filter((m) => hasOption(m, http)).map((m) => [methodPath(m), m]),
    ),
  );
  const admitNative = async (
    req: Parameters<DualHandler>[0],
    res: Parameters<DualHandler>[1],
    path: string,
  ): Promise<void> => {
    const method = methods.get(path);
    if (method === undefined) {
      throw new ConnectError(`${path} is not served by the gateway`, Code.Unimplemented);
    }
    const headers = forwardedHeadersOf(req);
    const identity =
      headers.authorization === undefined
        ? undefined
        : await authenticate(method, headerReader(headers)).catch(() => undefined);
    const client = clientKeyOf(identity?.userId, addressOf(req, config.RATE_LIMIT_TRUSTED_PROXIES));
    setHeaders(res, await admit(rateLimits.take(client, method)));
  };

  const inFlight = createInFlight();

  const cors = createCorsPolicy(config);
  // A native RPC path ("/pkg.Service/Method" of a service the gateway serves) takes POST from
  // browsers (Connect and gRPC-Web); a REST path takes what its routes declare.
  const methodsOf = (path: string, requested: string): string[] => {
    const service = rpcServiceOf(path);
    const isRpc =
      service !== undefined &&
      (upstreams.has(service) ||
        service === Health.typeName ||
        service.startsWith("grpc.reflection."));
    const methods = routeMethodsOf(routes, path, requested);
    return isRpc && !methods.includes("POST") ? [...methods, "POST"].sort() : methods;
  };

  // /openapi.json and /docs: the document of these routes, built now, and Swagger UI.
  const serveDocs = createDocs(routes);
  // Answers a GET of the gateway's own paths; false at once for any other path.
  const serveOps = (path: string, res: GatewayResponse): Promise<void> | false => {
    if (path === "/healthz") {
      res.writeHead(200, { "content-type": "text/plain; charset=utf-8" });
      res.end("ok\n");
    } else if (path === "/readyz") {
      res.writeHead(health.serving ? 200 : 503, { "content-type": "text/plain; charset=utf-8" });
      res.end(health.serving ? "ready\n" : "not ready\n");
    } else if (path === "/metrics") {
      return metrics.registry.metrics().then((body) => {
        res.writeHead(200, { "content-type": metrics.registry.contentType });
        res.end(body);
      });
    } else {
      return serveDocs(path, res);
    }
    return Promise.resolve();
  };

  // What a request turned out to be, for its metrics and log line: the RPC is "" for requests
  // that are none ("/pkg.Service/Method" otherwise), so its label has a bounded set of values.
  interface Served extends Exchange {
    kind: string;
  }
  const route = async (
    req: Parameters<DualHandler>[0],
    res: Parameters<DualHandler>[1],
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
    if (serving.draining) {
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
    await transcode(req, res, path, served);
  };

  const handle: DualHandler = (req, res) => {
    const started = performance.now();
    const path = pathOf(req);
    const given = req.headers["x-request-id"];
    const requestId = typeof given === "string" && given !== "" ? given : randomUUID();
    req.headers["x-request-id"] = requestId;
    res.setHeader("x-request-id", requestId);
    const served: Served = { kind: "rest" };
    inFlight.enter();
    // The one listener of the response: a request's end is counted, measured and logged here.
    res.once("close", () => {
      inFlight.leave();
      if (!res.writableFinished) served.cancel?.abort();
      const durationMs = performance.now() - started;
      const { kind, rpc = "" } = served;
      requests.inc({ kind, rpc, status: String(res.statusCode) });
      latency.observe({ kind, rpc }, durationMs / 1000);
      // The line is built only when it is written: the hop costs nothing at level warn.
      if (!log.isLevelEnabled("info")) return;
      log.info(
        {
          method: req.method,
          path,
          status: res.statusCode,
          durationMs: Math.round(durationMs * 100) / 100,
          requestId,
          kind,
          ...(rpc === "" ? {} : { rpc }),
        },
        "request",
      );
    });
    route(req, res, path, served).catch((err: unknown) => {
      log.error({ err, path }, "request failed");
      if (!res.headersSent) sendError(res, new ConnectError("internal error", Code.Internal));
      else res.destroy();
    });
  };

  const serving = createServing({
    config,
    log,
    health,
    inFlight,
    handle,
    upgrade,
    release: () => {
      for (const watcher of watchers) watcher.close();
      verifier.close();
      registry.close();
      for (const upstream of upstreams.values()) upstream.close();
      rateLimits.close().catch((err: unknown) => log.warn({ err }, "closing rate limits failed"));
    },
  });

  return {
    listen: () => serving.listen(),
    close: () => serving.close(),
  };
}
