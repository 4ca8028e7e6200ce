// Independent clients against each built service process on its one port: @grpc/grpc-js,
// Connect-ES over Connect, gRPC-Web and gRPC, and plain HTTP for the operational endpoints.
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { createClient, type Transport } from "@connectrpc/connect";
import {
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
  Http2SessionManager,
} from "@connectrpc/connect-node";
import type * as grpc from "@grpc/grpc-js";
import { describe, it } from "vitest";
import {
  Health,
  type HealthCheckRequest,
  HealthCheckRequestSchema,
  type HealthCheckResponse,
  HealthCheckResponseSchema,
  HealthCheckResponse_ServingStatus as ServingStatus,
} from "../gen/grpc/health/v1/health_pb.ts";
import { grpcJsClient, grpcJsUnary } from "./support/grpc-wire.ts";
import { servicesUnderTest, useServiceProcesses } from "./support/services.ts";

const urlOf = useServiceProcesses();

const checkPath = "/grpc.health.v1.Health/Check";

/** Runs `use` with a grpc-js client to the process, closing it afterwards. */
async function withGrpcJs<T>(url: string, use: (client: grpc.Client) => Promise<T>): Promise<T> {
  const client = grpcJsClient(url);
  try {
    return await use(client);
  } finally {
    client.close();
  }
}

/** The first message of a grpc-js Health/Watch stream, which is then cancelled. */
function firstWatchMessage(client: grpc.Client): Promise<HealthCheckResponse> {
  return new Promise((resolve, reject) => {
    const call = client.makeServerStreamRequest(
      "/grpc.health.v1.Health/Watch",
      (req: HealthCheckRequest) => Buffer.from(toBinary(HealthCheckRequestSchema, req)),
      (bytes: Buffer) => fromBinary(HealthCheckResponseSchema, bytes),
      create(HealthCheckRequestSchema),
      { deadline: Date.now() + 20_000 },
    );
    call.once("data", (message: HealthCheckResponse) => {
      resolve(message);
      call.cancel();
    });
    // The cancel above ends the stream with CANCELLED, which is expected once a message came.
    call.on("error", reject);
  });
}

type TransportKind = "connect 1.1" | "connect 2" | "grpc-web 1.1" | "grpc-web 2" | "grpc 2";

/** A Connect-ES transport of the given protocol and HTTP version, with its session closer. */
function transportFor(kind: TransportKind, baseUrl: string): [Transport, () => void] {
  const sessionManager = new Http2SessionManager(baseUrl);
  const close = () => sessionManager.abort();
  switch (kind) {
    case "connect 1.1":
      return [createConnectTransport({ baseUrl, httpVersion: "1.1" }), close];
    case "connect 2":
      return [createConnectTransport({ baseUrl, httpVersion: "2", sessionManager }), close];
    case "grpc-web 1.1":
      return [createGrpcWebTransport({ baseUrl, httpVersion: "1.1" }), close];
    case "grpc-web 2":
      return [createGrpcWebTransport({ baseUrl, httpVersion: "2", sessionManager }), close];
    case "grpc 2":
      return [createGrpcTransport({ baseUrl, sessionManager }), close];
  }
}

/** The value of rpc_server_calls_total for successful Health/Check calls, 0 if absent. */
function healthCheckCalls(metricsText: string): number {
  const sample = metricsText
    .split("\n")
    .find(
      (line) =>
        line.startsWith("rpc_server_calls_total{") &&
        line.includes('service="grpc.health.v1.Health"') &&
        line.includes('method="Check"') &&
        line.includes('code="ok"'),
    );
  return sample === undefined ? 0 : Number(sample.slice(sample.lastIndexOf(" ") + 1));
}

describe.each(servicesUnderTest)("$name service process, seen by other clients", (s) => {
  it("answers Health/Check to @grpc/grpc-js with SERVING, for the process and the service", async ({
    expect,
  }) => {
    await withGrpcJs(urlOf(s.name), async (client) => {
      for (const service of ["", s.service.typeName]) {
        const req = create(HealthCheckRequestSchema, { service });
        const result = await grpcJsUnary(
          client,
          checkPath,
          HealthCheckRequestSchema,
          HealthCheckResponseSchema,
          req,
        );
        expect(result).toMatchObject({ ok: true, message: { status: ServingStatus.SERVING } });
      }
    });
  });

  it.for<TransportKind>(["connect 1.1", "connect 2", "grpc-web 1.1", "grpc-web 2", "grpc 2"])(
    "answers Health/Check over %s with SERVING on the same port",
    async (kind, { expect }) => {
      const [transport, close] = transportFor(kind, urlOf(s.name));
      try {
        const health = createClient(Health, transport);
        expect((await health.check({})).status).toBe(ServingStatus.SERVING);
        const own = await health.check({ service: s.service.typeName });
        expect(own.status).toBe(ServingStatus.SERVING);
      } finally {
        close();
      }
    },
  );

  it("streams SERVING first on Health/Watch over gRPC (grpc-js and Connect-ES)", async ({
    expect,
  }) => {
    const first = await withGrpcJs(urlOf(s.name), firstWatchMessage);
    expect(first.status).toBe(ServingStatus.SERVING);

    const [transport, close] = transportFor("grpc 2", urlOf(s.name));
    const abort = new AbortController();
    try {
      const watch = createClient(Health, transport).watch({}, { signal: abort.signal });
      const next = await watch[Symbol.asyncIterator]().next();
      expect(next.done).toBe(false);
      expect(next.value?.status).toBe(ServingStatus.SERVING);
    } finally {
      abort.abort();
      close();
    }
  });

  it("answers /healthz and /readyz with 200 on the RPC port", async ({ expect }) => {
    const healthz = await fetch(`${urlOf(s.name)}/healthz`);
    expect(healthz.status).toBe(200);
    expect(await healthz.text()).toBe("ok\n");
    const readyz = await fetch(`${urlOf(s.name)}/readyz`);
    expect(readyz.status).toBe(200);
    expect(await readyz.text()).toBe("ready\n");
  });

  it("counts Health/Check calls in Prometheus /metrics on the RPC port", async ({ expect }) => {
    const scrape = async () => {
      const res = await fetch(`${urlOf(s.name)}/metrics`);
      expect(res.status).toBe(200);
      expect(res.headers.get("content-type")).toMatch(/^text\/plain/);
      return res.text();
    };
    const before = healthCheckCalls(await scrape());
    await withGrpcJs(urlOf(s.name), (client) =>
      grpcJsUnary(
        client,
        checkPath,
        HealthCheckRequestSchema,
        HealthCheckResponseSchema,
        create(HealthCheckRequestSchema),
      ),
    );
    const [transport, close] = transportFor("connect 1.1", urlOf(s.name));
    try {
      await createClient(Health, transport).check({});
    } finally {
      close();
    }
    const text = await scrape();
    expect(text).toContain("# TYPE rpc_server_calls_total counter");
    expect(healthCheckCalls(text)).toBeGreaterThanOrEqual(before + 2);
  });
});
