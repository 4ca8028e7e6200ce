import { Counter, Histogram, type Registry } from "prom-client";
import type { Log } from "../kit/log.ts";
import { latencyBuckets } from "../kit/metrics.ts";
import type { Exchange, GatewayRequest, GatewayResponse } from "./exchange.ts";

/**
 * What a request turned out to be, for its metrics and log line: its kind (rest, native, ops,
 * local, cors, draining) and its RPC, "" for requests that are none ("/pkg.Service/Method"
 * otherwise), so the labels have a bounded set of values.
 */
export interface Served extends Exchange {
  kind: string;
}

/** One answered request, as the request log records it. */
export interface AnsweredRequest {
  readonly path: string;
  readonly requestId: string;
  readonly served: Served;
  readonly durationMs: number;
}

/** Counts, times and logs each request the gateway answered. */
export interface RequestLog {
  record(req: GatewayRequest, res: GatewayResponse, answered: AnsweredRequest): void;
}

/**
 * Creates the request log: `gateway_http_requests_total` by kind, RPC and status, the
 * `gateway_http_request_duration_seconds` histogram by kind and RPC, and one log line per
 * request at level info.
 */
export function createRequestLog(registry: Registry, log: Log): RequestLog {
  const requests = new Counter({
    name: "gateway_http_requests_total",
    help: "HTTP requests the gateway answered, by kind (rest, native, ops), RPC and status.",
    labelNames: ["kind", "rpc", "status"],
    registers: [registry],
  });
  const latency = new Histogram({
    name: "gateway_http_request_duration_seconds",
    help: "Time from request to the end of the response, by kind and RPC.",
    labelNames: ["kind", "rpc"],
    buckets: latencyBuckets,
    registers: [registry],
  });
  return {
    record(req, res, { path, requestId, served, durationMs }) {
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
    },
  };
}
