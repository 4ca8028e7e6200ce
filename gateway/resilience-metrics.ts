import { Counter, Gauge, type Registry } from "prom-client";
import type { ResilienceEvents } from "../kit/balance/resilient.ts";

const breakerStates = { closed: 0, "half-open": 1, open: 2 } as const;

/**
 * The metrics of the upstream services' resilience: breaker state, ejections, retries and
 * retry budget exhaustion, per upstream service, fed by the service upstreams' events.
 */
export function createResilienceMetrics(registry: Registry): ResilienceEvents {
  const breaker = new Gauge({
    name: "gateway_upstream_breaker_state",
    help: "Circuit breaker state per upstream service: 0 closed, 1 half-open, 2 open.",
    labelNames: ["service"],
    registers: [registry],
  });
  const perService = (name: string, help: string) =>
    new Counter({ name, help, labelNames: ["service"], registers: [registry] });
  const ejections = perService(
    "gateway_upstream_ejections_total",
    "Instances ejected after consecutive failures, per upstream service.",
  );
  const retries = perService(
    "gateway_upstream_retries_total",
    "Unary calls retried on another instance, per upstream service.",
  );
  const exhausted = perService(
    "gateway_upstream_retry_budget_exhausted_total",
    "Retries refused because the upstream service's retry budget was spent.",
  );
  return {
    onBreakerState: (service, state) => breaker.set({ service }, breakerStates[state]),
    onEject: (service) => ejections.inc({ service }),
    onRetry: (service) => retries.inc({ service }),
    onBudgetExhausted: (service) => exhausted.inc({ service }),
  };
}
