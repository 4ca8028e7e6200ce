// Rate limits at the gateway, between real processes: per client and class with 429,
// Retry-After and RateLimit-* headers on REST and native calls, per account on login, and one
// limit shared through the real Redis by two gateway processes.
import { randomUUID } from "node:crypto";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LibraryService } from "../gateway/testdata/gen/protomesh/gatewaytest/v1/gatewaytest_pb.ts";
import { killAllProcesses, type StartedProcess, startProcess } from "./support/process.ts";
import { deleteRedisKeys, testRedisUrl } from "./support/redis.ts";

let library: StartedProcess;
beforeAll(async () => {
  library = await startProcess("gateway/testdata/library-server.js");
});
afterAll(killAllProcesses);

describe("rate limits in one gateway's memory", () => {
  let gateway: StartedProcess;
  beforeAll(async () => {
    gateway = await startProcess("gateway/testdata/library-gateway.js", {
      env: { LIBRARY_SERVICE_URL: library.url, RATE_LIMITS: "default=5/1m" },
    });
  });

  it("admits the bucket, then answers 429 with Retry-After and RateLimit headers", async () => {
    const statuses: number[] = [];
    let last: Response | undefined;
    for (let i = 0; i < 7; i++) {
      last = await fetch(`${gateway.url}/v1/shelves/s${i}`);
      statuses.push(last.status);
      if (i === 0) expect(last.headers.get("ratelimit-remaining")).toBe("4");
      if (last.status === 429) break;
    }
    expect(statuses).toEqual([200, 200, 200, 200, 200, 429]);
    expect(last?.headers.get("ratelimit-limit")).toBe("5");
    expect(last?.headers.get("ratelimit-remaining")).toBe("0");
    expect(Number(last?.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
    expect(await last?.json()).toMatchObject({ code: Code.ResourceExhausted });

    // A native call of the same client and class draws on the same bucket.
    const client = createClient(
      LibraryService,
      createConnectTransport({ baseUrl: gateway.url, httpVersion: "1.1" }),
    );
    const err = await client.getShelf({ shelfId: "x" }).catch((e: unknown) => e);
    expect(ConnectError.from(err).code).toBe(Code.ResourceExhausted);

    const metrics = await (await fetch(`${gateway.url}/metrics`)).text();
    expect(metrics).toMatch(/gateway_rate_limited_total\{class="default",scope="client"\} [2-9]/);
  });
});

describe("login limits per account", () => {
  it("refuses a fourth login to one account while another account still logs in", async () => {
    const user = await startProcess("services/user/main.js");
    const gateway = await startProcess("gateway/main.js", {
      env: { USER_SERVICE_URL: user.url, RATE_LIMITS: "auth=100/1m", RATE_LIMIT_ACCOUNT: "3/1m" },
    });
    const login = (email: string) =>
      fetch(`${gateway.url}/v1/auth/login`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ email, password: "wrong-password-1" }),
      });
    const statuses: number[] = [];
    for (let i = 0; i < 4; i++) statuses.push((await login("Target@Example.com")).status);
    // Wrong passwords are 401s until the account's bucket is empty.
    expect(statuses).toEqual([401, 401, 401, 429]);
    expect((await login(" target@example.com ")).status).toBe(429);
    expect((await login("other@example.com")).status).toBe(401);
  });
});

describe.skipIf(testRedisUrl === undefined)("one limit shared through Redis", () => {
  const prefix = `protomesh:test:rate-limit:${randomUUID()}:`;
  afterAll(async () => deleteRedisKeys(testRedisUrl as string, prefix));

  it("lets two gateway processes admit at most 102 of a burst of 1,000 against 100", async () => {
    const env = {
      LIBRARY_SERVICE_URL: library.url,
      REDIS_URL: testRedisUrl as string,
      RATE_LIMIT_KEY_PREFIX: prefix,
      RATE_LIMITS: "default=100/1h",
      // Redis is up here: a loaded test machine must not make a replica decide alone.
      RATE_LIMIT_REDIS_TIMEOUT_MS: "10000",
    };
    const gateways = await Promise.all([
      startProcess("gateway/testdata/library-gateway.js", { env }),
      startProcess("gateway/testdata/library-gateway.js", { env }),
    ]);
    const statuses = await Promise.all(
      Array.from({ length: 1000 }, async (_, i) => {
        const res = await fetch(`${gateways[i % 2]?.url}/v1/shelves/burst${i}`);
        await res.arrayBuffer();
        return res.status;
      }),
    );
    const admitted = statuses.filter((s) => s === 200).length;
    expect(admitted).toBeGreaterThanOrEqual(100);
    expect(admitted).toBeLessThanOrEqual(102);
    expect(statuses.filter((s) => s !== 200 && s !== 429)).toEqual([]);
    for (const gateway of gateways) {
      const metrics = await (await fetch(`${gateway.url}/metrics`)).text();
      expect(metrics).toMatch(/^gateway_rate_limit_fallbacks_total 0$/m);
    }
  });
});
