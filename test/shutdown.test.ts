// Graceful shutdown of a real process: SIGTERM while a call is in flight.

import http2 from "node:http2";
import { Code, createClient } from "@connectrpc/connect";
import {
  createConnectTransport,
  createGrpcTransport,
  Http2SessionManager,
} from "@connectrpc/connect-node";
import { afterEach, describe, expect, it } from "vitest";
import {
  Health,
  HealthCheckResponse_ServingStatus as ServingStatus,
} from "../gen/grpc/health/v1/health_pb.ts";
import { UserService } from "../gen/protomesh/user/v1/user_pb.ts";
import { grpcFrame } from "./support/grpc-wire.ts";
import { killAllProcesses, startProcess } from "./support/process.ts";
import { delay, settle, within } from "./support/settle.ts";

const fixture = "test/fixtures/slow-server.js";
const sessions: Http2SessionManager[] = [];

afterEach(async () => {
  for (const session of sessions.splice(0)) session.abort();
  await killAllProcesses();
});

/** Starts the slow-server test double and HTTP/2 clients to it (Connect and gRPC). */
async function startSlowServer(graceMs: number, slowMs: number) {
  const server = await startProcess(fixture, {
    env: {
      SHUTDOWN_GRACE_MS: String(graceMs),
      SLOW_MS: String(slowMs),
      // Far beyond the test, so that no deadline ends the slow call.
      DEFAULT_DEADLINE_MS: "120000",
    },
  });
  const connectSession = new Http2SessionManager(server.url);
  const grpcSession = new Http2SessionManager(server.url);
  sessions.push(connectSession, grpcSession);
  const users = createClient(
    UserService,
    createConnectTransport({
      baseUrl: server.url,
      httpVersion: "2",
      sessionManager: connectSession,
    }),
  );
  const health = createClient(
    Health,
    createGrpcTransport({ baseUrl: server.url, sessionManager: grpcSession }),
  );
  return { server, users, health };
}

/** The HTTP/2 reset code of one gRPC GetMe call to `url` (0 when the stream was not reset). */
async function refusedStreamCode(url: string): Promise<number> {
  const session = http2.connect(url);
  try {
    const stream = session.request({
      ":method": "POST",
      ":path": `/${UserService.typeName}/GetMe`,
      "content-type": "application/grpc",
      te: "trailers",
    });
    stream.on("error", () => {});
    stream.end(grpcFrame(new Uint8Array()));
    stream.resume();
    await new Promise((resolve) => stream.once("close", resolve));
    return stream.rstCode ?? 0;
  } finally {
    session.close();
  }
}

describe("graceful shutdown of the slow-server test double (kit runProcess + createServer)", () => {
  it("drains on SIGTERM: NOT_SERVING, new calls refused, the in-flight call completes, exit 0", async () => {
    const graceMs = 5000;
    const { server, users, health } = await startSlowServer(graceMs, 3000);

    // A health Watch opened before SIGTERM: the way a gRPC load balancer follows one backend.
    const watchAbort = new AbortController();
    const watch = health.watch({}, { signal: watchAbort.signal })[Symbol.asyncIterator]();
    try {
      expect((await watch.next()).value?.status).toBe(ServingStatus.SERVING);

      let inFlightSettled = false;
      const inFlight = settle(users.getMe({})).finally(() => {
        inFlightSettled = true;
      });
      await delay(200);
      const signalledAt = performance.now();
      const exited = server.stop("SIGTERM");

      const update = await within(watch.next(), 5000, "the Watch update");
      expect(update.value?.status).toBe(ServingStatus.NOT_SERVING);

      // A poller that checks health while the process drains sees NOT_SERVING.
      expect((await health.check({})).status).toBe(ServingStatus.NOT_SERVING);

      const late = await settle(users.getMe({}));
      expect(late.ok ? "answered" : late.error.code).toBe(Code.Unavailable);
      // Refused unrun, and said so: protomesh's clients send such a call to another instance.
      expect(late.ok ? "" : late.error.metadata.get("protomesh-refused")).toBe("draining");
      // A gRPC call is reset with REFUSED_STREAM, which gRPC clients know means the same.
      expect(await refusedStreamCode(server.url)).toBe(http2.constants.NGHTTP2_REFUSED_STREAM);
      // Both were answered while the first call was still being served, i.e. while draining.
      expect(inFlightSettled).toBe(false);

      const first = await inFlight;
      expect(first.ok ? first.value.email : first.error.message).toBe("slow@example.com");

      expect(await exited).toBe(0);
      expect(performance.now() - signalledAt).toBeLessThan(graceMs);
      const stopped = server.logs.find((line) => line.msg === "stopped");
      expect(stopped?.abandoned).toBe(0);
    } finally {
      watchAbort.abort();
    }
  });

  it("exits 0 shortly after the grace period when a call outlasts it; the call fails, not hangs", async () => {
    const graceMs = 1000;
    const { server, users } = await startSlowServer(graceMs, 60_000);

    const inFlight = settle(users.getMe({}));
    await delay(200);
    const signalledAt = performance.now();
    const code = await within(server.stop("SIGTERM"), graceMs + 10_000, "the process exit");
    const exitedAfter = performance.now() - signalledAt;

    expect(code).toBe(0);
    expect(exitedAfter).toBeGreaterThanOrEqual(graceMs - 50);
    expect(exitedAfter).toBeLessThan(graceMs + 5000);

    const outcome = await within(inFlight, 5000, "the in-flight call");
    expect(outcome.ok ? "answered" : outcome.error.code).toBe(Code.Unavailable);
    expect(server.logs.find((line) => line.msg === "stopped")?.abandoned).toBe(1);
  });

  it("tells a call abandoned at the end of the grace period Unavailable: server is shutting down", async () => {
    const { server, users } = await startSlowServer(1000, 60_000);
    const inFlight = settle(users.getMe({}));
    await delay(200);
    expect(await within(server.stop("SIGTERM"), 15_000, "the process exit")).toBe(0);
    const outcome = await within(inFlight, 5000, "the in-flight call");
    expect(outcome.ok ? "answered" : outcome.error.code).toBe(Code.Unavailable);
    expect(outcome.ok ? "" : outcome.error.rawMessage).toBe("server is shutting down");
  });
});
