import { once } from "node:events";
import http from "node:http";
import http2 from "node:http2";
import net from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import type { DescService } from "@bufbuild/protobuf";
import { Code, ConnectError, type Interceptor, type ServiceImpl } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { Health } from "../gen/grpc/health/v1/health_pb.ts";
import { methodTimeouts } from "./call-policy.ts";
import type { ServerConfig } from "./config.ts";
import { applyDeadline, type DeadlinePolicy } from "./deadline.ts";
import { createErrorInterceptor } from "./error-interceptor.ts";
import { createHealth, type HealthState } from "./health.ts";
import type { Log } from "./log.ts";
import { createMetrics, type Metrics } from "./metrics.ts";
import { type NodeRequest, type NodeResponse, pathOf } from "./node-http.ts";
import { createObserveInterceptor } from "./observe-interceptor.ts";
import { registerReflection } from "./reflection.ts";

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

// RFC 9113 §3.4: a prior-knowledge HTTP/2 connection opens with this preface; no HTTP/1.1
// request line starts with "PRI", so three bytes tell the two protocols apart.
const h2PrefacePrefix = Buffer.from("PRI");

// Health and reflection keep answering while the server drains, so that load balancers see
// NOT_SERVING and long-lived Watch streams do not hold the shutdown back.
// How long cancelled calls get to send their final status when the grace period is over.
const abandonGraceMs = 500;

const alwaysOpen = (path: string) =>
  path.startsWith("/grpc.health.v1.Health/") || path.startsWith("/grpc.reflection.");

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
  const health = createHealth(options.services.map((b) => b.service.typeName));
  const shutdown = new AbortController();
  let draining = false;
  let inFlight = 0;
  let drained: (() => void) | undefined;

  const baseInterceptors = [createObserveInterceptor(log, metrics), createErrorInterceptor(log)];
  const serviceInterceptors = [...baseInterceptors, ...(options.interceptors ?? [])];
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
    maxTimeoutMs: config.MAX_DEADLINE_MS,
    shutdownSignal: shutdown.signal,
    requestGate(ctx) {
      if (draining && ctx.service.typeName !== Health.typeName) {
        throw new ConnectError("server is shutting down", Code.Unavailable);
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

  const handle = (
    req: http.IncomingMessage | http2.Http2ServerRequest,
    res: http.ServerResponse | http2.Http2ServerResponse,
  ) => {
    const path = pathOf(req);
    applyDeadline(req.headers, path, deadline);
    if (!alwaysOpen(path)) {
      inFlight++;
      res.once("close", () => {
        inFlight--;
        if (inFlight === 0) drained?.();
      });
    }
    connectHandler(req, res);
  };

  const untilDrained = (timeoutMs: number) =>
    inFlight === 0
      ? Promise.resolve()
      : new Promise<void>((resolve) => {
          drained = resolve;
          setTimeout(resolve, timeoutMs).unref();
        });

  const h1 = http.createServer(handle);
  // Slowloris guard: a client gets this long to send its request headers.
  h1.headersTimeout = 30_000;
  h1.requestTimeout = 0;
  const h2 = http2.createServer({ maxSessionMemory: 32 }, handle);
  const sessions = new Set<http2.Http2Session>();
  h2.on("session", (session) => {
    sessions.add(session);
    session.once("close", () => sessions.delete(session));
  });
  const sockets = new Set<net.Socket>();
  const tcp = net.createServer((socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    routeConnection(socket, h1, h2);
  });

  return {
    health,
    metrics,
    listen() {
      return new Promise((resolve, reject) => {
        tcp.once("error", reject);
        tcp.listen(config.PORT, config.HOST, () => {
          tcp.off("error", reject);
          health.setServing(true);
          const address = tcp.address() as net.AddressInfo;
          log.info({ address: `${config.HOST}:${address.port}` }, "listening");
          resolve(address.port);
        });
      });
    },
    async close() {
      if (draining) return;
      draining = true;
      health.setServing(false);
      log.info({ inFlight }, "draining");
      // The listener stays open while calls drain, so health checks keep answering NOT_SERVING
      // and new calls on any connection get Unavailable (see requestGate) instead of a reset.
      h1.closeIdleConnections();
      await untilDrained(config.SHUTDOWN_GRACE_MS);
      tcp.close();
      // Tell HTTP/2 clients to open no new streams (GOAWAY).
      for (const session of sessions) session.close();
      const abandoned = inFlight;
      // Calls still running past the grace period are cancelled; give them a moment to send
      // their Unavailable status before the connections go.
      shutdown.abort(new ConnectError("server is shutting down", Code.Unavailable));
      await untilDrained(abandonGraceMs);
      // A response can be finished before its last frames have left: let each HTTP/2 session
      // close by itself after GOAWAY (it does once its streams are done), within a bound.
      await Promise.race([
        Promise.all([...sessions].map((session) => once(session, "close"))),
        sleep(abandonGraceMs),
      ]);
      for (const session of sessions) session.destroy();
      h1.closeAllConnections();
      for (const socket of sockets) socket.destroy();
      log.info({ abandoned }, "stopped");
    },
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

/** Hands a new connection to the HTTP/2 or the HTTP/1.1 server, by its first bytes. */
function routeConnection(socket: net.Socket, h1: http.Server, h2: http2.Http2Server): void {
  let head: Buffer = Buffer.alloc(0);
  const onData = (chunk: Buffer) => {
    head = head.length === 0 ? chunk : Buffer.concat([head, chunk]);
    const n = Math.min(head.length, h2PrefacePrefix.length);
    const mayBeH2 = head.subarray(0, n).equals(h2PrefacePrefix.subarray(0, n));
    if (mayBeH2 && head.length < h2PrefacePrefix.length) return;
    socket.off("data", onData);
    socket.pause();
    socket.unshift(head);
    if (mayBeH2) {
      // The HTTP/2 session takes over the socket's handle and first drains what is buffered.
      h2.emit("connection", socket);
    } else {
      h1.emit("connection", socket);
      socket.resume();
    }
  };
  socket.on("data", onData);
}
