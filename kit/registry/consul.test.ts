// The Consul adapter against the Consul HTTP API test double (test/support/consul-api-double.ts):
// Consul cannot be installed where these tests run, so an in-process server stands in for the
// agent's HTTP API. consul-agent.test.ts runs the shared contract against a real agent.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  type ConsulApiDouble,
  startConsulApiDouble,
} from "../../test/support/consul-api-double.ts";
import { killAllProcesses, startProcess } from "../../test/support/process.ts";
import {
  describeConsulContract,
  follow,
  type Probe,
  probeServiceName,
  silentLog,
  startProbe,
} from "../../test/support/registry-contract.ts";
import { repoRoot } from "../../test/support/repo.ts";
import { delay } from "../../test/support/settle.ts";
import { type ConsulRegistryOptions, consulServiceName, createConsulRegistry } from "./consul.ts";
import type { Registry } from "./registry.ts";

let double: ConsulApiDouble;
beforeAll(async () => {
  double = await startConsulApiDouble();
});
afterAll(() => double.close());

describeConsulContract("Consul registry contract, against the Consul HTTP API test double", () => ({
  address: double.address,
  advertiseHost: "127.0.0.1",
  listenHost: "127.0.0.1",
}));

const version = (
  JSON.parse(readFileSync(join(repoRoot, "package.json"), "utf8")) as {
    version: string;
  }
).version;

describe("Consul registry, against the Consul HTTP API test double", () => {
  const opened: Registry[] = [];
  const probes: Probe[] = [];
  afterEach(async () => {
    double.failWith(undefined);
    await double.restart();
    for (const registry of opened.splice(0)) {
      await registry.deregister();
      registry.close();
    }
    for (const probe of probes.splice(0)) await probe.close();
  });

  function open(overrides: Partial<ConsulRegistryOptions> = {}): Registry {
    const registry = createConsulRegistry({
      address: double.address,
      log: silentLog,
      version,
      waitMs: 2000,
      backoffBaseMs: 50,
      backoffMaxMs: 400,
      minQueryIntervalMs: 10,
      ...overrides,
    });
    opened.push(registry);
    return registry;
  }

  const healthQueries = (service: string, since = 0) =>
    double.requests
      .slice(since)
      .filter((r) => r.path === `/v1/health/service/${consulServiceName(service)}`);

  /** Registers an instance of `service`, as a process would, on a probe that passes its check. */
  async function registerProbe(service: string): Promise<Probe> {
    const probe = await startProbe("127.0.0.1");
    probes.push(probe);
    await open().register({ services: [service], host: "127.0.0.1", port: probe.port });
    return probe;
  }

  /** Registers an instance of `service`; resolves once a watch has it. */
  async function registeredAndWatched(service: string) {
    const probe = await registerProbe(service);
    const client = open();
    const followed = follow(client, service);
    await followed.until((set) => set.length === 1);
    return { probe, client, followed };
  }

  it("registers with an ID per instance, address, tags, version and protocols, and an HTTP check on /readyz", async () => {
    const service = "protomesh.user.v1.UserService";
    const since = double.requests.length;
    await open({
      checkIntervalMs: 10_000,
      checkTimeoutMs: 2_000,
      deregisterAfterMs: 90_000,
      token: "s3cret",
    }).register({ services: [service], host: "10.1.2.3", port: 50051 });

    const request = double.requests
      .slice(since)
      .find((r) => r.path === "/v1/agent/service/register");
    expect(request?.method).toBe("PUT");
    expect(request?.headers["x-consul-token"]).toBe("s3cret");
    expect(request?.body).toEqual({
      ID: "protomesh-user-v1-userservice-10.1.2.3-50051",
      Name: "protomesh-user-v1-userservice",
      Address: "10.1.2.3",
      Port: 50051,
      Tags: ["protomesh", "connect", "grpc", "grpc-web"],
      Meta: { service, version, protocols: "connect,grpc,grpc-web" },
      Check: {
        Name: `${service} on 10.1.2.3:50051`,
        HTTP: "http://10.1.2.3:50051/readyz",
        Interval: "10s",
        Timeout: "2s",
        DeregisterCriticalServiceAfter: "90s",
      },
    });
  });

  it("registers a gRPC health check on the service's own name when asked to", async () => {
    const service = "protomesh.task.v1.TaskService";
    const since = double.requests.length;
    await open({ check: "grpc" }).register({ services: [service], host: "::1", port: 50052 });
    const request = double.requests
      .slice(since)
      .find((r) => r.path === "/v1/agent/service/register");
    expect(request?.body).toMatchObject({
      ID: "protomesh-task-v1-taskservice-::1-50052",
      Address: "::1",
      Check: {
        GRPC: "[::1]:50052/protomesh.task.v1.TaskService",
        GRPCUseTLS: false,
        Interval: "10s",
        Timeout: "5s",
        DeregisterCriticalServiceAfter: "1m",
      },
    });
    expect((request?.body as { Check?: object } | undefined)?.Check).not.toHaveProperty("HTTP");
  });

  it("fails registration with a message naming Consul when the agent refuses it", async () => {
    double.failWith(500);
    await expect(
      open().register({ services: [probeServiceName()], host: "127.0.0.1", port: 1 }),
    ).rejects.toThrow(`could not register protomesh.contract.v1.`);
  });

  it("follows the service with blocking queries: passing, the last X-Consul-Index, and a wait", async () => {
    const service = probeServiceName();
    const since = double.requests.length;
    const { followed } = await registeredAndWatched(service);
    // Another change, so that a query that blocked on the index sees it.
    await registerProbe(service);
    await followed.until((set) => set.length === 2);

    const queries = healthQueries(service, since);
    expect(queries[0]?.query.get("index")).toBe("0");
    for (const query of queries) {
      expect(query.method).toBe("GET");
      expect(query.query.get("passing")).toBe("true");
      expect(query.query.get("wait")).toBe("2s");
    }
    // Each query asks for changes after the index the one before it was answered with.
    const indexes = queries.map((q) => Number(q.query.get("index")));
    expect(indexes.slice(1).every((index, i) => index >= (indexes[i] ?? 0))).toBe(true);
    expect(indexes.at(-1)).toBeGreaterThan(0);
  });

  it("gives a new watcher the known set at once, shares one query per service, and calls no one when nothing changed", async () => {
    const service = probeServiceName();
    const { client, followed } = await registeredAndWatched(service);
    const seen: number[] = [];
    const second = client.watch(service, (set) => seen.push(set.length));
    // Delivered before watch returned.
    expect(seen).toEqual([1]);

    const since = double.requests.length;
    // Two waits of 2 s elapse with no change: the queries return, nobody is called.
    await delay(4500);
    second.close();
    expect(seen).toEqual([1]);
    expect(followed.sets.length).toBe(1);
    const queries = healthQueries(service, since);
    expect(queries.length).toBeGreaterThanOrEqual(2);
    expect(queries.length).toBeLessThanOrEqual(4);
  });

  it("keeps the last known instances while Consul answers 500 or refuses connections, backs off, and recovers", async () => {
    const service = probeServiceName();
    const { client, followed } = await registeredAndWatched(service);
    const known = client.current(service);
    expect(known).toHaveLength(1);

    // Consul fails: the blocked query is answered 500, and so is every retry.
    const failedSince = double.requests.length;
    double.failWith(500);
    await delay(1500);
    const failed = healthQueries(service, failedSince);
    expect(client.current(service)).toEqual(known);
    expect(followed.sets).toHaveLength(1);
    // Without backoff a retry loop would make hundreds of requests in 1.5 s; with pauses
    // doubling from 25–50 ms up to 200–400 ms, about eight.
    expect(failed.length).toBeGreaterThanOrEqual(4);
    expect(failed.length).toBeLessThanOrEqual(14);
    const gaps = failed.slice(1).map((r, i) => r.at - (failed[i]?.at ?? 0));
    expect(gaps[3]).toBeGreaterThan(gaps[0] ?? 0);

    // Consul goes away altogether: connections are refused.
    await double.stop();
    await delay(800);
    expect(client.current(service)).toEqual(known);
    expect(followed.sets).toHaveLength(1);

    // It comes back with a change made meanwhile: the watcher gets the new set.
    const [instance] = known;
    if (instance === undefined) throw new Error("no instance");
    double.failWith(undefined);
    double.setStatus(instance.id, "critical");
    await double.restart();
    await followed.until((set) => set.length === 0, 3000);
  });

  it("starts over from index 0 when the index goes backwards", async () => {
    const service = probeServiceName();
    const { followed } = await registeredAndWatched(service);
    await delay(100);
    const before = double.index;
    const since = double.requests.length;
    double.setIndex(before - 3);
    await delay(300);
    const indexes = healthQueries(service, since).map((q) => q.query.get("index"));
    expect(indexes[0]).toBe("0");
    expect(indexes[1]).toBe(String(before - 3));
    // The set itself did not change: nobody was called.
    expect(followed.sets).toHaveLength(1);
  });

  it("stops on close: the query in flight is aborted and no other is made", async () => {
    const service = probeServiceName();
    const { client } = await registeredAndWatched(service);
    await delay(100);
    const blocked = healthQueries(service).at(-1);
    expect(blocked?.answered).toBe(false);
    const count = double.requests.length;
    client.close();
    await delay(500);
    expect(blocked?.answered).toBe(false);
    expect(healthQueries(service, count)).toHaveLength(0);
    expect(client.current(service)).toEqual([]);
  });

  it("keeps following a service until its last watcher closes", async () => {
    const service = probeServiceName();
    const { client, followed } = await registeredAndWatched(service);
    const [instance] = client.current(service);
    const seen: number[] = [];
    const other = client.watch(service, (set) => seen.push(set.length));
    followed.close();
    double.setStatus(instance?.id ?? "", "critical");
    await delay(300);
    expect(seen).toEqual([1, 0]);

    other.close();
    await delay(100);
    const count = healthQueries(service).length;
    double.setStatus(instance?.id ?? "", "passing");
    await delay(300);
    // The query that was blocked was aborted rather than answered, and none followed.
    expect(healthQueries(service).at(-1)?.answered).toBe(false);
    expect(healthQueries(service)).toHaveLength(count);
    expect(seen).toEqual([1, 0]);
  });
});

describe("a service process with CONSUL_HTTP_ADDR, against the Consul HTTP API test double", () => {
  afterEach(killAllProcesses);

  it("registers once listening, and deregisters before it drains: watchers lose it while it still serves", async () => {
    const task = await startProcess("services/task/main.js", {
      env: { CONSUL_HTTP_ADDR: double.address, REGISTRY_CHECK_INTERVAL_MS: "500" },
    });
    const name = consulServiceName("protomesh.task.v1.TaskService");
    const id = `${name}-127.0.0.1-${task.port}`;
    const registration = double.requests.find(
      (r) => r.path === "/v1/agent/service/register" && (r.body as { ID?: string }).ID === id,
    );
    expect(registration?.body).toMatchObject({
      Name: name,
      Port: task.port,
      Meta: { version, service: "protomesh.task.v1.TaskService" },
      Check: { HTTP: `${task.url}/readyz`, DeregisterCriticalServiceAfter: "1m" },
    });

    // A client of the mesh sees the process once the double's check passed against it.
    const client = createConsulRegistry({ address: double.address, log: silentLog, waitMs: 2000 });
    try {
      const followed = follow(client, "protomesh.task.v1.TaskService");
      await followed.until((set) => set.some((i) => i.address === task.url));

      // Hold the deregistration's answer, and look at the process meanwhile.
      let whileDeregistering: { ready: number; draining: boolean } | undefined;
      double.beforeAnswer(async (request) => {
        if (request.path !== `/v1/agent/service/deregister/${id}`) return;
        const ready = (await fetch(`${task.url}/readyz`)).status;
        whileDeregistering = { ready, draining: task.logs.some((l) => l.msg === "draining") };
        await delay(300);
      });
      const exited = task.stop("SIGTERM");
      await followed.until((set) => !set.some((i) => i.address === task.url), 5000);
      expect(await exited).toBe(0);

      expect(whileDeregistering).toEqual({ ready: 200, draining: false });
      const messages = task.logs.map((l) => l.msg);
      expect(messages.indexOf("deregistered from Consul"), messages.join(", ")).toBeGreaterThan(-1);
      expect(messages.indexOf("deregistered from Consul"), messages.join(", ")).toBeLessThan(
        messages.indexOf("draining"),
      );
      expect(double.services.has(id)).toBe(false);
    } finally {
      double.beforeAnswer(undefined);
      client.close();
    }
  });

  it("does not start when Consul refuses the registration, and says so", async () => {
    double.failWith(500);
    try {
      await expect(
        startProcess("services/task/main.js", { env: { CONSUL_HTTP_ADDR: double.address } }),
      ).rejects.toThrow(
        /exited with code 1[\s\S]*could not register protomesh\.task\.v1\.TaskService with Consul/,
      );
    } finally {
      double.failWith(undefined);
    }
  });
});
