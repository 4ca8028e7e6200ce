// The behaviour of kit/registry's Consul adapter that must hold against any Consul agent: run
// against the Consul HTTP API test double (kit/registry/consul.test.ts) and against a real
// agent (kit/registry/consul-agent.test.ts, when CONSUL_HTTP_ADDR is set).
import { randomUUID } from "node:crypto";
import { once } from "node:events";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { createLogger } from "../../kit/log.ts";
import { type ConsulRegistryOptions, createConsulRegistry } from "../../kit/registry/consul.ts";
import type { Instance, Registry } from "../../kit/registry/registry.ts";

/** Where the agent is, and where it reaches this test process for its checks. */
export interface ContractTarget {
  /** The agent's HTTP API. */
  readonly address: string;
  /** ACL token, if the agent wants one. */
  readonly token?: string | undefined;
  /** The host the agent's checks and the watchers dial. */
  readonly advertiseHost: string;
  /** The interface the probe servers listen on. */
  readonly listenHost: string;
}

/** A logger that writes nothing. */
export const silentLog = createLogger({ name: "registry-test", level: "silent" });

/** A unique full protobuf service name, so that tests never see each other's instances. */
export function probeServiceName(): string {
  return `protomesh.contract.v1.Probe${randomUUID().slice(0, 8)}Service`;
}

/** A process stand-in that answers the agent's check on /readyz, ready or not. */
export interface Probe {
  readonly port: number;
  setReady(ready: boolean): void;
  close(): Promise<void>;
}

/** Starts a probe server; ready at first. */
export async function startProbe(host: string): Promise<Probe> {
  let ready = true;
  const server = http.createServer((req, res) => {
    const ok = req.url === "/readyz" && ready;
    res.writeHead(ok ? 200 : 503, { "content-type": "text/plain" });
    res.end(ok ? "ready\n" : "not ready\n");
  });
  server.listen(0, host);
  await once(server, "listening");
  return {
    port: (server.address() as AddressInfo).port,
    setReady(next) {
      ready = next;
    },
    async close() {
      server.closeAllConnections();
      server.close();
      await once(server, "close");
    },
  };
}

/** Every set a watch delivered, and a way to wait for one. */
export interface Followed {
  readonly sets: (readonly Instance[])[];
  /** Resolves with the latest set once it satisfies `predicate`. */
  until(
    predicate: (set: readonly Instance[]) => boolean,
    timeoutMs?: number,
  ): Promise<readonly Instance[]>;
  close(): void;
}

/** Watches `service` and records what the listener gets. */
export function follow(registry: Registry, service: string): Followed {
  const sets: (readonly Instance[])[] = [];
  const waiters = new Set<() => void>();
  const watcher = registry.watch(service, (set) => {
    sets.push(set);
    for (const wake of waiters) wake();
  });
  return {
    sets,
    until(predicate, timeoutMs = 15_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const latest = sets.at(-1);
          if (latest === undefined || !predicate(latest)) return;
          waiters.delete(check);
          clearTimeout(timer);
          resolve(latest);
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`no matching set within ${timeoutMs} ms; got ${JSON.stringify(sets)}`));
        }, timeoutMs);
        waiters.add(check);
        check();
      });
    },
    close: () => watcher.close(),
  };
}

/** The contract, as a vitest suite against the agent `target()` returns. */
export function describeConsulContract(title: string, target: () => ContractTarget): void {
  describe(title, () => {
    const cleanups: (() => Promise<void> | void)[] = [];
    afterEach(async () => {
      for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
    });

    function open(overrides: Partial<ConsulRegistryOptions> = {}): Registry {
      const registry = createConsulRegistry({
        address: target().address,
        token: target().token,
        log: silentLog,
        checkIntervalMs: 1000,
        checkTimeoutMs: 1000,
        version: "0.0.0-contract",
        waitMs: 5000,
        ...overrides,
      });
      cleanups.push(async () => {
        await registry.deregister();
        registry.close();
      });
      return registry;
    }

    async function probe(): Promise<Probe> {
      const started = await startProbe(target().listenHost);
      cleanups.push(() => started.close());
      return started;
    }

    function watch(registry: Registry, service: string): Followed {
      const followed = follow(registry, service);
      cleanups.push(() => followed.close());
      return followed;
    }

    it("shows a registered instance to watchers once its check passes, with its address and meta", async () => {
      const service = probeServiceName();
      const { advertiseHost } = target();
      const server = await probe();
      await open().register({ services: [service], host: advertiseHost, port: server.port });

      const client = open();
      const [instance] = await watch(client, service).until((set) => set.length === 1);
      expect(instance).toMatchObject({
        service,
        address: `http://${advertiseHost}:${server.port}`,
        meta: { service, version: "0.0.0-contract", protocols: "connect,grpc,grpc-web" },
      });
      expect(client.current(service)).toEqual([instance]);
    });

    it("drops an instance whose check fails and takes it back when it passes again", async () => {
      const service = probeServiceName();
      const server = await probe();
      await open().register({
        services: [service],
        host: target().advertiseHost,
        port: server.port,
      });
      const followed = watch(open(), service);
      await followed.until((set) => set.length === 1);

      server.setReady(false);
      await followed.until((set) => set.length === 0);
      server.setReady(true);
      await followed.until((set) => set.length === 1);
    });

    it("delivers the whole set on every change, and drops a deregistered instance at once", async () => {
      const service = probeServiceName();
      const host = target().advertiseHost;
      const [first, second] = [await probe(), await probe()];
      const firstProcess = open();
      await firstProcess.register({ services: [service], host, port: first.port });
      const followed = watch(open(), service);
      await followed.until((set) => set.length === 1);

      await open().register({ services: [service], host, port: second.port });
      const both = await followed.until((set) => set.length === 2);
      expect(both.map((i) => i.address).sort()).toEqual(
        [`http://${host}:${first.port}`, `http://${host}:${second.port}`].sort(),
      );
      expect(both.map((i) => i.id)).toEqual(both.map((i) => i.id).sort());

      // The first probe still passes its check: only the deregistration can remove it.
      await firstProcess.deregister();
      const [left] = await followed.until((set) => set.length === 1, 3000);
      expect(left?.address).toBe(`http://${host}:${second.port}`);
    });
  });
}
