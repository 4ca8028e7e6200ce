import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";

/**
 * The buckets of every latency histogram, in seconds: from 1 ms to 30 s, unary calls at the low
 * end, streams and uploads at the high end.
 */
export const latencyBuckets = [
  0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
];

/** The Prometheus registry of one process and the RPC metrics every server records. */
export interface Metrics {
  readonly registry: Registry;
  /** Calls handled, by service, method and final code ("ok" or a Connect code name). */
  readonly calls: Counter<"service" | "method" | "code">;
  /** Calls that ended with an error, by service, method and code. */
  readonly errors: Counter<"service" | "method" | "code">;
  /** Time from the start of a call to its last response byte, in seconds. */
  readonly duration: Histogram<"service" | "method">;
  /** Calls in flight right now. */
  readonly inFlight: Gauge;
}

/** Creates a fresh registry with process metrics and the RPC call metrics. */
export function createMetrics(): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const labelNames = ["service", "method", "code"] as const;
  return {
    registry,
    calls: new Counter({
      name: "rpc_server_calls_total",
      help: "RPC calls handled, by final code.",
      labelNames,
      registers: [registry],
    }),
    errors: new Counter({
      name: "rpc_server_errors_total",
      help: "RPC calls that ended with an error, by code.",
      labelNames,
      registers: [registry],
    }),
    duration: new Histogram({
      name: "rpc_server_duration_seconds",
      help: "RPC call latency in seconds.",
      labelNames: ["service", "method"],
      buckets: latencyBuckets,
      registers: [registry],
    }),
    inFlight: new Gauge({
      name: "rpc_server_in_flight",
      help: "RPC calls in flight.",
      registers: [registry],
    }),
  };
}
