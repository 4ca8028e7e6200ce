// Hostile or broken requests against one built service process (user, MAX_MESSAGE_BYTES=1024):
// each gets a clear error in its own protocol, and the process keeps serving afterwards.
import { create, toBinary } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  HealthCheckRequestSchema,
  HealthCheckResponseSchema,
  HealthCheckResponse_ServingStatus as ServingStatus,
} from "../gen/grpc/health/v1/health_pb.ts";
import { grpcFrame, grpcJsClient, grpcJsUnary, rawGrpcPost } from "./support/grpc-wire.ts";
import { killAllProcesses, type StartedProcess, startProcess } from "./support/process.ts";

let server: StartedProcess;
let client: grpc.Client;

beforeAll(async () => {
  server = await startProcess("services/user/main.js", { env: { MAX_MESSAGE_BYTES: "1024" } });
  client = grpcJsClient(server.url);
});
afterAll(async () => {
  client.close();
  await killAllProcesses();
});

const checkPath = "/grpc.health.v1.Health/Check";

/** Asserts the process is still running and still answers Health/Check with SERVING. */
async function expectStillServing(): Promise<void> {
  const result = await grpcJsUnary(
    client,
    checkPath,
    HealthCheckRequestSchema,
    HealthCheckResponseSchema,
    create(HealthCheckRequestSchema),
  );
  expect(result).toMatchObject({ ok: true, message: { status: ServingStatus.SERVING } });
  expect(server.running(), `process exited; stderr:\n${server.stderr()}`).toBe(true);
}

/** Asserts a gRPC status is present and one of the error codes (1 to 16), not OK. */
function expectErrorStatus(status: number | undefined): void {
  expect(status).toBeDefined();
  expect(Object.values(Code)).toContain(status);
  expect(status).not.toBe(0);
}

describe("a service process given bad input", () => {
  it("answers an unknown method over gRPC with UNIMPLEMENTED (12)", async () => {
    for (const path of ["/protomesh.user.v1.UserService/NoSuchMethod", "/no.such.v1.Nope/Call"]) {
      const result = await grpcJsUnary(
        client,
        path,
        HealthCheckRequestSchema,
        HealthCheckResponseSchema,
        create(HealthCheckRequestSchema),
      );
      expect(result).toMatchObject({ ok: false, code: grpc.status.UNIMPLEMENTED });
      expect(result.ok ? "" : result.details).toContain(path);
    }
    await expectStillServing();
  });

  it("answers an unknown method over Connect with 404 and code unimplemented", async () => {
    const res = await fetch(`${server.url}/protomesh.user.v1.UserService/NoSuchMethod`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{}",
    });
    expect(res.status).toBe(404);
    expect(res.headers.get("content-type")).toMatch(/^application\/json/);
    const body = (await res.json()) as { code?: string; message?: string };
    expect(body.code).toBe("unimplemented");
    expect(body.message).toContain("/protomesh.user.v1.UserService/NoSuchMethod");
    await expectStillServing();
  });

  it("counts a refused call on /metrics: errors by code and the latency histogram", async () => {
    const call = () =>
      fetch(`${server.url}/protomesh.user.v1.UserService/GetMe`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: "{}",
      });
    expect((await call()).status).toBe(401);
    expect((await call()).status).toBe(401);
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    const labels = 'service="protomesh.user.v1.UserService",method="GetMe"';
    expect(metrics).toContain(`rpc_server_calls_total{${labels},code="unauthenticated"} 2`);
    expect(metrics).toContain(`rpc_server_errors_total{${labels},code="unauthenticated"} 2`);
    expect(metrics).toContain(`rpc_server_duration_seconds_count{${labels}} 2`);
  });

  it("answers a gRPC frame shorter than its declared length with a non-OK status", async () => {
    const res = await rawGrpcPost(server.url, checkPath, grpcFrame(Buffer.from("abc"), 100));
    expect(res.httpStatus).toBe(200);
    expectErrorStatus(res.grpcStatus);
    expect(res.grpcMessage).toBeTruthy();
    expect(res.body.length).toBe(0);
    await expectStillServing();
  });

  it("answers garbage protobuf bytes with a non-OK status", async () => {
    const garbage = Buffer.from([0xff, 0xff, 0xff, 0xff, 0x0f, 0xde, 0xad]);
    const res = await rawGrpcPost(server.url, checkPath, grpcFrame(garbage));
    expect(res.httpStatus).toBe(200);
    expectErrorStatus(res.grpcStatus);
    expect(res.body.length).toBe(0);
    await expectStillServing();
  });

  it("answers a message over MAX_MESSAGE_BYTES with RESOURCE_EXHAUSTED (8)", async () => {
    const big = create(HealthCheckRequestSchema, { service: "x".repeat(4096) });
    const res = await rawGrpcPost(
      server.url,
      checkPath,
      grpcFrame(toBinary(HealthCheckRequestSchema, big)),
    );
    expect(res.grpcStatus).toBe(grpc.status.RESOURCE_EXHAUSTED);
    expect(res.body.length).toBe(0);
    // A client library sees the same.
    const viaClient = await grpcJsUnary(
      client,
      checkPath,
      HealthCheckRequestSchema,
      HealthCheckResponseSchema,
      big,
    );
    expect(viaClient).toMatchObject({ ok: false, code: grpc.status.RESOURCE_EXHAUSTED });
    await expectStillServing();
  });

  it("answers a Connect unary POST with content-type text/plain with 415", async () => {
    const res = await fetch(`${server.url}${checkPath}`, {
      method: "POST",
      headers: { "content-type": "text/plain" },
      body: "{}",
    });
    expect(res.status).toBe(415);
    await res.arrayBuffer();
    await expectStillServing();
  });
});
