// Token keys through service discovery: with the user service known only from Consul (its test
// double: Consul cannot be installed here) and USER_SERVICE_URL pointing at nothing, the task
// service and the gateway still fetch the keys and accept the user service's tokens.
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { gatewayConfigSchema } from "../../gateway/config.ts";
import { createGatewayServer } from "../../gateway/server.ts";
import { TaskService } from "../../gen/protomesh/task/v1/task_pb.ts";
import { loadConfig } from "../../kit/config.ts";
import type { Runnable } from "../../kit/run-process.ts";
import {
  type ConsulApiDouble,
  startConsulApiDouble,
} from "../../test/support/consul-api-double.ts";
import { createEmptyDatabase, dropDatabase } from "../../test/support/database.ts";
import {
  bearer,
  registerAndLogin,
  startUserService,
  testLog,
  type UserServiceUnderTest,
  uniqueEmail,
} from "../../test/support/user-service.ts";
import { taskConfigSchema } from "./config.ts";
import { createTaskServer } from "./server.ts";

// Nothing listens on port 1: a process that dials USER_SERVICE_URL gets no keys.
const nowhere = "http://127.0.0.1:1";
const userServiceName = "protomesh-user-v1-userservice";

let consul: ConsulApiDouble;
let users: UserServiceUnderTest;
const started: Runnable[] = [];
let databaseUrl: string | undefined;

/** Starts `server` and waits until Consul has told it where the user service is. */
async function startDiscovering(server: Runnable): Promise<string> {
  const asked = consul.requests.length;
  started.push(server);
  const port = await server.listen();
  await vi.waitFor(() => {
    const answered = consul.requests
      .slice(asked)
      .some((r) => r.answered && r.path === `/v1/health/service/${userServiceName}`);
    expect(answered).toBe(true);
  });
  return `http://127.0.0.1:${port}`;
}

beforeAll(async () => {
  consul = await startConsulApiDouble();
  users = await startUserService({
    CONSUL_HTTP_ADDR: consul.address,
    LOGIN_REQUIRE_VERIFIED_EMAIL: "false",
  });
  await vi.waitFor(() => {
    const registered = [...consul.services.values()].filter((s) => s.body.Name === userServiceName);
    expect(registered.map((s) => s.status)).toEqual(["passing"]);
  });
});
afterAll(async () => {
  for (const server of started.reverse()) await server.close();
  await users?.close();
  await consul?.close();
  if (databaseUrl) await dropDatabase(databaseUrl);
});

const discovery = {
  USER_SERVICE_URL: nowhere,
  PORT: "0",
  HOST: "127.0.0.1",
  LOG_LEVEL: "silent",
};

describe("token keys from the user service that Consul reports (Consul API test double)", () => {
  it("let the task service accept a token while USER_SERVICE_URL leads nowhere", async () => {
    databaseUrl = await createEmptyDatabase();
    const config = loadConfig(taskConfigSchema, {
      ...discovery,
      CONSUL_HTTP_ADDR: consul.address,
      DATA_DIR: users.config.DATA_DIR,
      DATABASE_URL: databaseUrl,
    });
    const url = await startDiscovering(await createTaskServer({ config, log: testLog }));
    const { login } = await registerAndLogin(users.connect, uniqueEmail("discovered"));
    const tasks = createClient(
      TaskService,
      createConnectTransport({ baseUrl: url, httpVersion: "1.1" }),
    );
    expect(await tasks.listProjects({}, bearer(login.accessToken))).toMatchObject({
      projects: [],
    });
  });

  it("let the gateway accept a token while USER_SERVICE_URL leads nowhere", async () => {
    const config = loadConfig(gatewayConfigSchema, {
      ...discovery,
      CONSUL_HTTP_ADDR: consul.address,
      RATE_LIMITS: "default=off,auth=off",
    });
    const url = await startDiscovering(createGatewayServer({ config, log: testLog }));
    const email = uniqueEmail("gateway");
    const { login } = await registerAndLogin(users.connect, email);
    const res = await fetch(`${url}/v1/users/me`, bearer(login.accessToken));
    expect({ status: res.status, body: await res.json() }).toMatchObject({
      status: 200,
      body: { email },
    });
  });
});
