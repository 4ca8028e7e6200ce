import { EventEmitter } from "node:events";
import type { IncomingMessage } from "node:http";
import { setTimeout as sleep } from "node:timers/promises";
import Consul from "consul";
import type { Log } from "../log.ts";
import {
  baseUrl,
  byId,
  hostPort,
  type Instance,
  type InstancesListener,
  instancesDiffer,
  type Registration,
  type Registry,
} from "./registry.ts";

/** How a Consul registry registers, checks and watches. */
export interface ConsulRegistryOptions {
  /** The agent's HTTP API, such as `http://127.0.0.1:8500`. */
  readonly address: string;
  /** ACL token, sent as X-Consul-Token. */
  readonly token?: string | undefined;
  readonly log: Log;
  /** What the agent checks: GET /readyz (default), or grpc.health.v1.Health/Check. */
  readonly check?: "http" | "grpc";
  readonly checkIntervalMs?: number;
  readonly checkTimeoutMs?: number;
  /** How long a check may stay critical before the agent removes the instance (default 1 min). */
  readonly deregisterAfterMs?: number;
  /** Announced as the `version` meta. */
  readonly version?: string;
  /** How long one blocking query waits for a change (default 60 s; Consul caps it at 10 min). */
  readonly waitMs?: number;
  /** The pause after a first failed query; it doubles, with jitter, up to backoffMaxMs. */
  readonly backoffBaseMs?: number;
  readonly backoffMaxMs?: number;
  /** The shortest time between two queries of one service (default 100 ms). */
  readonly minQueryIntervalMs?: number;
  /** The bound of every other call to the agent: register, deregister (default 5 s). */
  readonly requestTimeoutMs?: number;
}

/** The protocols every protomesh process serves on its one port, announced in the meta. */
export const meshProtocols = ["connect", "grpc", "grpc-web"] as const;

/**
 * The Consul name of a service: its full protobuf name as a DNS label, so that Consul's DNS
 * interface can resolve it (`protomesh.user.v1.UserService` -> `protomesh-user-v1-userservice`).
 */
export function consulServiceName(service: string): string {
  return service.toLowerCase().replace(/[^a-z0-9-]+/g, "-");
}

/** A Go duration, the form Consul reads: "10s", "1m", "250ms". */
export function goDuration(ms: number): string {
  if (ms % 60_000 === 0) return `${ms / 60_000}m`;
  if (ms % 1000 === 0) return `${ms / 1000}s`;
  return `${Math.round(ms)}ms`;
}

// The package's types leave out options its runtime takes: `timeout` on every call, `index`
// and `wait` on reads, and `ctx`, an EventEmitter on which "cancel" aborts the request and
// whose `includeResponse` makes the call resolve with [response, body] (for X-Consul-Index).
type AgentCall = (options: Record<string, unknown>) => Promise<unknown>;
type HealthQuery = (options: Record<string, unknown>) => Promise<[IncomingMessage, unknown]>;

/** The part of a /v1/health/service entry the registry reads. */
interface HealthEntry {
  readonly Node?: { readonly Address?: string };
  readonly Service?: {
    readonly ID?: string;
    readonly Address?: string;
    readonly Port?: number;
    readonly Meta?: Record<string, string> | null;
  };
}

interface Feed {
  readonly service: string;
  readonly listeners: Set<{ readonly listener: InstancesListener }>;
  instances: readonly Instance[] | undefined;
  readonly stop: AbortController;
}

/**
 * Creates a registry backed by a Consul agent (the `consul` package). Each service a process
 * serves is registered with a check the agent runs against it and is removed by the agent if
 * that check stays critical. Watches follow /v1/health/service/<name>?passing with blocking
 * queries, back off on errors, and keep the last known instances while Consul is unreachable.
 */
export function createConsulRegistry(options: ConsulRegistryOptions): Registry {
  const { log } = options;
  const waitMs = options.waitMs ?? 60_000;
  const backoffBaseMs = options.backoffBaseMs ?? 250;
  const backoffMaxMs = options.backoffMaxMs ?? 30_000;
  const minQueryIntervalMs = options.minQueryIntervalMs ?? 100;
  const requestTimeoutMs = options.requestTimeoutMs ?? 5_000;
  const url = new URL(options.address);
  const secure = url.protocol === "https:";
  const consul = new Consul({
    host: url.hostname,
    port: Number(url.port) || (secure ? 443 : 80),
    secure,
    ...(options.token === undefined ? {} : { defaults: { token: options.token } }),
  });
  const { service: agentService } = consul.agent;
  const registerService = agentService.register.bind(agentService) as unknown as AgentCall;
  const deregisterService = agentService.deregister.bind(agentService) as unknown as AgentCall;
  const healthService = consul.health.service.bind(consul.health) as unknown as HealthQuery;

  const registered = new Set<string>();
  const feeds = new Map<string, Feed>();

  function checkOf(service: string, host: string, port: number): Record<string, unknown> {
    const common = {
      name: `${service} on ${hostPort(host, port)}`,
      interval: goDuration(options.checkIntervalMs ?? 10_000),
      timeout: goDuration(options.checkTimeoutMs ?? 5_000),
      deregistercriticalserviceafter: goDuration(options.deregisterAfterMs ?? 60_000),
    };
    return options.check === "grpc"
      ? { ...common, grpc: `${hostPort(host, port)}/${service}`, grpcusetls: false }
      : { ...common, http: `${baseUrl(host, port)}/readyz` };
  }

  async function register({ services, host, port }: Registration): Promise<void> {
    for (const service of services) {
      const name = consulServiceName(service);
      const id = `${name}-${host}-${port}`;
      const check = checkOf(service, host, port);
      try {
        await registerService({
          id,
          name,
          address: host,
          port,
          tags: ["protomesh", ...meshProtocols],
          meta: {
            service,
            version: options.version ?? "unknown",
            protocols: meshProtocols.join(","),
          },
          check,
          timeout: requestTimeoutMs,
        });
      } catch (err) {
        // All or nothing: a process that fails to start leaves no half registration behind.
        await deregister();
        throw new Error(
          `could not register ${service} with Consul at ${options.address}: ${(err as Error).message}`,
          { cause: err },
        );
      }
      registered.add(id);
      log.info({ id, name, check: check.http ?? check.grpc }, "registered with Consul");
    }
  }

  async function deregister(): Promise<void> {
    const ids = [...registered];
    registered.clear();
    await Promise.all(
      ids.map(async (id) => {
        try {
          await deregisterService({ id, timeout: requestTimeoutMs });
          log.info({ id }, "deregistered from Consul");
        } catch (err) {
          // Not fatal: once this process is gone its check fails, and the agent removes it.
          log.warn({ err, id }, "could not deregister from Consul");
        }
      }),
    );
  }

  function publish(feed: Feed, instances: readonly Instance[]): void {
    if (feed.instances !== undefined && !instancesDiffer(feed.instances, instances)) return;
    feed.instances = instances;
    for (const { listener } of feed.listeners) {
      try {
        listener(instances);
      } catch (err) {
        log.error({ err, service: feed.service }, "a registry listener failed");
      }
    }
  }

  async function query(feed: Feed, index: bigint): Promise<{ body: unknown; index: bigint }> {
    const ctx = Object.assign(new EventEmitter(), { includeResponse: true });
    const cancel = () => ctx.emit("cancel");
    feed.stop.signal.addEventListener("abort", cancel, { once: true });
    try {
      const [res, body] = await healthService({
        service: consulServiceName(feed.service),
        passing: true,
        index: String(index),
        wait: goDuration(waitMs),
        // Consul adds up to wait/16 to spread wake-ups; past that, the agent is not answering.
        timeout: waitMs + waitMs / 16 + requestTimeoutMs,
        ctx,
      });
      return { body, index: parseIndex(res.headers["x-consul-index"]) };
    } finally {
      feed.stop.signal.removeEventListener("abort", cancel);
    }
  }

  async function follow(feed: Feed): Promise<void> {
    const { signal } = feed.stop;
    let index = 0n;
    let failures = 0;
    while (!signal.aborted) {
      const started = performance.now();
      let pause: number;
      try {
        const answer = await query(feed, index);
        if (failures > 0) log.info({ service: feed.service, failures }, "Consul answers again");
        failures = 0;
        // Consul's rules for blocking queries: an index that went backwards (a snapshot
        // restore, a new leader) restarts from 0, i.e. with a query that does not block, and 0
        // is never waited on (it would answer at once, every time).
        index = answer.index < index ? 0n : answer.index > 0n ? answer.index : 1n;
        publish(feed, toInstances(feed.service, answer.body));
        // A query that keeps answering at once must not spin.
        pause = minQueryIntervalMs - (performance.now() - started);
      } catch (err) {
        if (signal.aborted) return;
        failures++;
        const known = feed.instances?.length ?? 0;
        const fields = { err, service: feed.service, failures, known };
        if (failures === 1) log.warn(fields, "Consul watch failed; keeping the last known set");
        else log.debug(fields, "Consul watch failed again");
        pause = backoff(failures);
      }
      if (pause > 0) await sleep(pause, undefined, { signal }).catch(() => {});
    }
  }

  // Exponential, with "equal jitter": half the ceiling for sure, half at random, so that
  // watchers that failed together do not come back together, and the pause still grows.
  function backoff(failures: number): number {
    const ceiling = Math.min(backoffMaxMs, backoffBaseMs * 2 ** (failures - 1));
    return ceiling / 2 + (Math.random() * ceiling) / 2;
  }

  function stopFeed(feed: Feed): void {
    feeds.delete(feed.service);
    feed.stop.abort();
  }

  return {
    register,
    deregister,
    watch(service, listener) {
      let feed = feeds.get(service);
      if (feed === undefined) {
        feed = { service, listeners: new Set(), instances: undefined, stop: new AbortController() };
        feeds.set(service, feed);
        void follow(feed);
      }
      const entry = { listener };
      feed.listeners.add(entry);
      if (feed.instances !== undefined) listener(feed.instances);
      const watched = feed;
      return {
        close() {
          if (!watched.listeners.delete(entry)) return;
          if (watched.listeners.size === 0) stopFeed(watched);
        },
      };
    },
    current: (service) => feeds.get(service)?.instances ?? [],
    close() {
      for (const feed of [...feeds.values()]) stopFeed(feed);
      consul.destroy();
    },
  };
}

function parseIndex(header: string | string[] | undefined): bigint {
  try {
    return typeof header === "string" ? BigInt(header) : 0n;
  } catch {
    return 0n;
  }
}

/** The instances of a /v1/health/service answer, sorted by id; entries without a port are skipped. */
function toInstances(service: string, body: unknown): readonly Instance[] {
  const entries = Array.isArray(body) ? (body as HealthEntry[]) : [];
  const instances: Instance[] = [];
  for (const { Node, Service } of entries) {
    const host = Service?.Address || Node?.Address;
    if (Service?.ID === undefined || !host || typeof Service.Port !== "number") continue;
    instances.push({
      id: Service.ID,
      service,
      address: baseUrl(host, Service.Port),
      meta: Object.freeze({ ...Service.Meta }),
    });
  }
  return Object.freeze(instances.sort(byId));
}
