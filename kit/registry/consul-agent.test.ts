// The Consul adapter against a real Consul agent. Consul cannot be installed on the machines
// where `npm test` usually runs, so this suite runs only where CONSUL_HTTP_ADDR names an agent
// (compose.yaml runs one) and is skipped elsewhere; consul.test.ts runs the same contract
// against the Consul HTTP API test double. SERVICE_ADVERTISE_HOST is the host at which the
// agent reaches this machine for its checks (127.0.0.1 when the agent runs on the host network).
import { afterEach, describe, expect, it } from "vitest";
import { z } from "zod";
import { killAllProcesses, startProcess } from "../../test/support/process.ts";
import { describeConsulContract, follow, silentLog } from "../../test/support/registry-contract.ts";
import { loadConfig } from "../config.ts";
import { registryConfigShape } from "./config.ts";
import { createConsulRegistry } from "./consul.ts";

const config = loadConfig(z.object(registryConfigShape));
const address = config.CONSUL_HTTP_ADDR;
const advertiseHost = config.SERVICE_ADVERTISE_HOST ?? "127.0.0.1";
const listenHost = advertiseHost === "127.0.0.1" ? "127.0.0.1" : "0.0.0.0";

describe.skipIf(address === undefined)("against a real Consul agent (CONSUL_HTTP_ADDR)", () => {
  const agent = address ?? "";

  describeConsulContract("Consul registry contract, against the real agent", () => ({
    address: agent,
    token: config.CONSUL_HTTP_TOKEN,
    advertiseHost,
    listenHost,
  }));

  describe("a service process, against the real agent", () => {
    afterEach(killAllProcesses);

    it.each(["http", "grpc"])(
      "registers, passes the agent's %s check, and leaves the healthy set when stopped",
      async (check) => {
        const task = await startProcess("services/task/main.js", {
          env: {
            CONSUL_HTTP_ADDR: agent,
            HOST: listenHost,
            SERVICE_ADVERTISE_HOST: advertiseHost,
            REGISTRY_CHECK: check,
            REGISTRY_CHECK_INTERVAL_MS: "1000",
          },
        });
        const url = `http://${advertiseHost}:${task.port}`;
        const client = createConsulRegistry({
          address: agent,
          token: config.CONSUL_HTTP_TOKEN,
          log: silentLog,
          waitMs: 5000,
        });
        try {
          const followed = follow(client, "protomesh.task.v1.TaskService");
          const passing = await followed.until((set) => set.some((i) => i.address === url));
          expect(passing.find((i) => i.address === url)?.meta.protocols).toBe(
            "connect,grpc,grpc-web",
          );
          expect(await task.stop("SIGTERM")).toBe(0);
          await followed.until((set) => !set.some((i) => i.address === url), 5000);
        } finally {
          client.close();
        }
      },
    );
  });
});
