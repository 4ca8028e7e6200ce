import type { DescService } from "@bufbuild/protobuf";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { Health } from "../gen/grpc/health/v1/health_pb.ts";
import { FileService } from "../gen/protomesh/file/v1/file_pb.ts";
import { InferenceService } from "../gen/protomesh/inference/v1/inference_pb.ts";
import { TaskService } from "../gen/protomesh/task/v1/task_pb.ts";
import { UserService } from "../gen/protomesh/user/v1/user_pb.ts";
import { createAuthenticator } from "../kit/auth/auth-interceptor.ts";
import { createRemoteVerifier } from "../kit/auth/remote-verifier.ts";
import { resiliencePolicyOf } from "../kit/balance/policy.ts";
import { methodTimeouts } from "../kit/call-policy.ts";
import type { DeadlinePolicy } from "../kit/deadline.ts";
import { createHealth } from "../kit/health.ts";
import { createInFlight } from "../kit/in-flight.ts";
import type { Log } from "../kit/log.ts";
import { createMetrics } from "../kit/metrics.ts";
import { registerReflection } from "../kit/reflection.ts";
import { openRegistry } from "../kit/registry/open-registry.ts";
import type { Watcher } from "../kit/registry/registry.ts";
import type { Runnable } from "../kit/run-process.ts";
import { createServing } from "../kit/serving.ts";
import { createCorsPolicy } from "./admission/cors.ts";
import { createNativeAdmission } from "./admission/native.ts";
import { createRateLimits } from "./admission/rate-limit.ts";
import type { GatewayConfig } from "./config.ts";
import { createDispatch } from "./dispatch.ts";
import { createOps } from "./ops.ts";
import { createRequestLog } from "./request-log.ts";
import { createResilienceMetrics } from "./resilience-metrics.ts";
import { createTranscoder } from "./rest/transcoder.ts";
import { createTusHandler } from "./rest/tus.ts";
import { createWebSocketGateway } from "./rest/websocket.ts";
import { createRouteTable } from "./routing/route-table.ts";
import { createNativeProxy } from "./upstream/native-proxy.ts";
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
 * pass-through, tus uploads to the file service, reflection of all routed services, its own
 * health, /healthz, /readyz and /metrics, all on one port.
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
  const health = createHealth([]);
  // The gateway turns NOT_SERVING when it starts to drain, and only then.
  const draining = () => !health.serving;
  const inFlight = createInFlight();
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
    draining,
    log,
  });
  // Reflection describes every routed service, so buf curl and grpcurl work at the gateway.
  const local = connectNodeAdapter({
    routes(router) {
      health.register(router);
      registerReflection(router, [...services, Health]);
    },
    maxTimeoutMs: config.MAX_DEADLINE_MS,
  });

  const handle = createDispatch({
    cors: createCorsPolicy(config),
    routes,
    upstreams,
    serveOps: createOps({ health, registry: metrics.registry, routes }),
    local,
    draining,
    proxy: createNativeProxy({ upstreams, log }),
    admitNative: createNativeAdmission({
      services,
      authenticate,
      rateLimits,
      trustedProxies: config.RATE_LIMIT_TRUSTED_PROXIES,
    }),
    deadline,
    transcode,
    tus: createTusHandler({
      upstreams,
      authenticate,
      deadline,
      maxUploadBytes: config.MAX_UPLOAD_BYTES,
      rateLimits,
      trustedProxies: config.RATE_LIMIT_TRUSTED_PROXIES,
      log,
    }),
    inFlight,
    requestLog: createRequestLog(metrics.registry, log),
    log,
  });

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
