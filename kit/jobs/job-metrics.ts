import { Counter, Gauge, type Registry } from "prom-client";
import type { StreamTransport } from "./stream-transport.ts";

/** Counters and gauges of streams and consumer groups, on the process's /metrics. */
export interface JobMetrics {
  readonly deliveries: Counter<"stream" | "group">;
  readonly failures: Counter<"stream" | "group">;
  readonly deadLettered: Counter<"stream" | "group">;
  readonly relayed: Counter<"stream">;
  /** Makes the gauges report this stream and group (length, pending, oldest pending age). */
  watch(stream: string, group: string): void;
}

/**
 * Registers the job metrics; the gauges ask the transport for fresh figures at each scrape,
 * and keep the last ones when it cannot answer (Redis down).
 */
export function createJobMetrics(registry: Registry, transport: StreamTransport): JobMetrics {
  const watched = new Map<string, { stream: string; group: string }>();
  const labelNames = ["stream", "group"] as const;
  const snapshot = async () => {
    const figures = [];
    for (const { stream, group } of watched.values()) {
      try {
        figures.push({ labels: { stream, group }, stats: await transport.stats(stream, group) });
      } catch {
        // No figures this scrape; the last reported values stand.
      }
    }
    return figures;
  };
  const gauge = (
    name: string,
    help: string,
    pick: (s: Awaited<ReturnType<typeof transport.stats>>) => number,
  ) =>
    new Gauge({
      name,
      help,
      labelNames,
      registers: [registry],
      async collect() {
        for (const { labels, stats } of await snapshot()) this.set(labels, pick(stats));
      },
    });
  gauge("jobs_stream_length", "Entries in the stream.", (s) => s.length);
  gauge(
    "jobs_pending",
    "Entries delivered to the group and not yet acknowledged.",
    (s) => s.pending,
  );
  gauge(
    "jobs_oldest_pending_seconds",
    "Idle time of the group's oldest pending entry.",
    (s) => s.oldestPendingMs / 1000,
  );
  gauge(
    "jobs_dead_letter_length",
    "Entries in the stream's dead-letter stream.",
    (s) => s.deadLettered,
  );
  const counter = (name: string, help: string) =>
    new Counter({ name, help, labelNames, registers: [registry] });
  return {
    deliveries: counter("jobs_deliveries_total", "Entries handed to a handler."),
    failures: counter("jobs_failures_total", "Handler runs that failed."),
    deadLettered: counter("jobs_dead_lettered_total", "Entries moved to the dead-letter stream."),
    relayed: new Counter({
      name: "jobs_relayed_total",
      help: "Events moved from the outbox to their stream.",
      labelNames: ["stream"],
      registers: [registry],
    }),
    watch(stream, group) {
      watched.set(`${stream}\u0000${group}`, { stream, group });
    },
  };
}
