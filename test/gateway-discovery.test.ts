// The gateway following service discovery, between real processes and the Consul HTTP API test
// double (Consul itself cannot be installed here): instances that register are routed to, and
// one that deregisters on SIGTERM is dropped before it drains, so no call fails.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ConsulApiDouble, startConsulApiDouble } from "./support/consul-api-double.ts";
import { killAllProcesses, type StartedProcess, startProcess } from "./support/process.ts";

let consul: ConsulApiDouble;
beforeAll(async () => {
  consul = await startConsulApiDouble();
});
afterAll(async () => {
  await killAllProcesses();
  await consul.close();
});

const callsIn = (p: StartedProcess) => p.logs.filter((l) => l.msg === "call").length;

describe("the gateway with Consul (test double of its HTTP API)", () => {
  it("routes to the instances that registered and drops one that deregisters", async () => {
    const env = { CONSUL_HTTP_ADDR: consul.address, REGISTRY_CHECK_INTERVAL_MS: "1000" };
    const a = await startProcess("gateway/testdata/library-server.js", { env });
    const b = await startProcess("gateway/testdata/library-server.js", { env });
    // Configured with no instance at all: everything it knows comes from Consul.
    const gateway = await startProcess("gateway/testdata/library-gateway.js", {
      env: { ...env, LIBRARY_SERVICE_URL: "http://127.0.0.1:1", RATE_LIMITS: "default=off" },
    });
    const call = async () => {
      const res = await fetch(`${gateway.url}/v1/shelves/s1`);
      await res.arrayBuffer();
      return res.status;
    };
    // Until Consul's first answer the gateway knows no instance (503); then both, shortly.
    for (let i = 0; i < 100 && (callsIn(a) === 0 || callsIn(b) === 0); i++) {
      if ((await call()) !== 200) await new Promise((r) => setTimeout(r, 50));
    }
    expect(callsIn(a)).toBeGreaterThan(0);
    expect(callsIn(b)).toBeGreaterThan(0);

    const stopping = b.stop("SIGTERM");
    const statuses: number[] = [];
    for (let i = 0; i < 40; i++) statuses.push(await call());
    expect(await stopping).toBe(0);
    const before = callsIn(a);
    for (let i = 0; i < 10; i++) statuses.push(await call());
    expect(statuses.filter((s) => s !== 200)).toEqual([]);
    expect(callsIn(a)).toBeGreaterThanOrEqual(before + 10);
  });
});
