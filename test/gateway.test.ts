// The gateway between real processes: REST/JSON transcoding to the user and task services,
// native Connect and gRPC pass-through, its own health and reflection of all four services.
import { randomBytes } from "node:crypto";
import http2 from "node:http2";
import net from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import {
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
} from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import WebSocket from "ws";
import {
  Health,
  HealthCheckResponse_ServingStatus as ServingStatus,
} from "../gen/grpc/health/v1/health_pb.ts";
import { UserService } from "../gen/protomesh/user/v1/user_pb.ts";
import { killAllProcesses, runBuf, type StartedProcess, startProcess } from "./support/process.ts";

let user: StartedProcess;
let task: StartedProcess;
let gateway: StartedProcess;
// Small, so that the oversized-body case needs no megabytes.
const maxBodyBytes = 4096;
// The one origin the gateway lets browsers call it from.
const appOrigin = "https://app.example.com";

beforeAll(async () => {
  // The accounts of this suite log in without verifying their email.
  user = await startProcess("services/user/main.js", {
    env: { LOGIN_REQUIRE_VERIFIED_EMAIL: "false" },
  });
  task = await startProcess("services/task/main.js", { env: { USER_SERVICE_URL: user.url } });
  gateway = await startProcess("gateway/main.js", {
    env: {
      USER_SERVICE_URL: user.url,
      TASK_SERVICE_URL: task.url,
      // Not an inference service: its calls are answered Unimplemented, deterministically.
      INFERENCE_SERVICE_URL: task.url,
      MAX_BODY_BYTES: String(maxBodyBytes),
      CORS_ORIGINS: `${appOrigin},http://localhost:5173`,
      CORS_ALLOW_CREDENTIALS: "true",
      // This suite logs in many accounts from one address; test/gateway-rate-limit.test.ts
      // covers the limits.
      RATE_LIMITS: "auth=off",
      RATE_LIMIT_ACCOUNT: "off",
    },
  });
});
afterAll(killAllProcesses);

const json = (body: unknown) => ({
  headers: { "content-type": "application/json" },
  body: JSON.stringify(body),
});

async function register(email: string): Promise<Response> {
  return fetch(`${gateway.url}/v1/auth/register`, {
    method: "POST",
    ...json({ email, password: "correct-horse-1", displayName: "Ada" }),
  });
}

async function tokenFor(email: string): Promise<string> {
  expect((await register(email)).status).toBe(200);
  const res = await fetch(`${gateway.url}/v1/auth/login`, {
    method: "POST",
    ...json({ email, password: "correct-horse-1" }),
  });
  expect(res.status).toBe(200);
  const { accessToken } = (await res.json()) as { accessToken: string };
  return accessToken;
}

const traceparent = () =>
  `00-${randomBytes(16).toString("hex")}-${randomBytes(8).toString("hex")}-01`;

describe("REST through the gateway", () => {
  it("registers, logs in and reads the caller's own account", async () => {
    const token = await tokenFor("ada@example.com");
    const res = await fetch(`${gateway.url}/v1/users/me`, {
      headers: { authorization: `Bearer ${token}`, "x-request-id": "req-42" },
    });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("application/json");
    expect(res.headers.get("x-request-id")).toBe("req-42");
    expect(await res.json()).toMatchObject({ email: "ada@example.com", displayName: "Ada" });
  });

  it("gives every response a request id when the client sent none", async () => {
    const res = await fetch(`${gateway.url}/.well-known/jwks.json`);
    expect(res.status).toBe(200);
    expect(res.headers.get("x-request-id")).toMatch(/^[\da-f-]{36}$/);
    expect(((await res.json()) as { keys: unknown[] }).keys.length).toBeGreaterThan(0);
  });

  it("updates the display name with PATCH and no update_mask", async () => {
    const token = await tokenFor("patch@example.com");
    const res = await fetch(`${gateway.url}/v1/users/me`, {
      method: "PATCH",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify({ displayName: "Countess" }),
    });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ displayName: "Countess" });
    const me = await fetch(`${gateway.url}/v1/users/me`, {
      headers: { authorization: `Bearer ${token}` },
    });
    expect(await me.json()).toMatchObject({ displayName: "Countess" });
  });

  it("answers an unknown route with 404 and google.rpc code 5", async () => {
    const res = await fetch(`${gateway.url}/v1/nothing/here`);
    expect(res.status).toBe(404);
    expect(await res.json()).toMatchObject({ code: 5, details: [] });
  });

  it("answers HEAD on every GET route with the GET's status and headers and no body", async () => {
    const get = await fetch(`${gateway.url}/.well-known/jwks.json`);
    const getBody = await get.text();
    const head = await fetch(`${gateway.url}/.well-known/jwks.json`, { method: "HEAD" });
    expect(head.status).toBe(200);
    expect(head.headers.get("content-type")).toBe(get.headers.get("content-type"));
    expect(Number(head.headers.get("content-length"))).toBe(Buffer.byteLength(getBody));
    expect(await head.text()).toBe("");
    const refused = await fetch(`${gateway.url}/v1/users/me`, { method: "HEAD" });
    expect(refused.status).toBe(401);
    expect(await refused.text()).toBe("");
  });

  it("answers a wrong method with 405 and an Allow header", async () => {
    const res = await fetch(`${gateway.url}/v1/users/me`, { method: "PUT" });
    expect(res.status).toBe(405);
    expect(res.headers.get("allow")).toBe("DELETE, GET, HEAD, PATCH");
    expect(((await res.json()) as { code: number }).code).toBe(Code.Unimplemented);
  });

  it("refuses malformed JSON (400), a non-JSON body (415) and an oversized body (413)", async () => {
    const url = `${gateway.url}/v1/auth/login`;
    const malformed = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: '{"email": ',
    });
    expect(malformed.status).toBe(400);
    expect(await malformed.json()).toMatchObject({ code: Code.InvalidArgument });

    const text = await fetch(url, {
      method: "POST",
      headers: { "content-type": "text/plain" },
      body: "email=ada",
    });
    expect(text.status).toBe(415);

    const big = await fetch(url, {
      method: "POST",
      ...json({ email: "x".repeat(maxBodyBytes * 2), password: "p" }),
    });
    expect(big.status).toBe(413);
    expect(((await big.json()) as { code: number }).code).toBe(Code.ResourceExhausted);
  });

  it("refuses a bad field in the JSON body with 400 naming it", async () => {
    const res = await fetch(`${gateway.url}/v1/auth/login`, {
      method: "POST",
      ...json({ email: "a@example.com", passwrd: "x" }),
    });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { message: string }).message).toContain("passwrd");
  });

  it("refuses a call without a token at the edge: 401, WWW-Authenticate, no upstream call", async () => {
    const refusedTrace = traceparent();
    const res = await fetch(`${gateway.url}/v1/users/me`, {
      headers: { traceparent: refusedTrace },
    });
    expect(res.status).toBe(401);
    expect(res.headers.get("www-authenticate")).toBe("Bearer");
    expect(await res.json()).toMatchObject({ code: Code.Unauthenticated });

    // A later call that does reach the user service, to know its log has caught up.
    const token = await tokenFor("edge@example.com");
    const servedTrace = traceparent();
    const served = await fetch(`${gateway.url}/v1/users/me`, {
      headers: { authorization: `Bearer ${token}`, traceparent: servedTrace },
    });
    expect(served.status).toBe(200);
    const traceOf = (tp: string) => tp.split("-")[1];
    const getMeCalls = () =>
      user.logs.filter(
        (l) => l.msg === "call" && l.method === "protomesh.user.v1.UserService/GetMe",
      );
    for (let i = 0; i < 100 && !getMeCalls().some((l) => l.traceId === traceOf(servedTrace)); i++) {
      await sleep(20);
    }
    expect(getMeCalls().some((l) => l.traceId === traceOf(servedTrace))).toBe(true);
    expect(getMeCalls().some((l) => l.traceId === traceOf(refusedTrace))).toBe(false);
  });

  it("refuses streaming calls without a token at the edge: event streams and WebSockets", async () => {
    const ask = await fetch(`${gateway.url}/v1/conversations/c1:ask`, {
      method: "POST",
      headers: { "content-type": "application/json", accept: "text/event-stream" },
      body: JSON.stringify({ question: "why?" }),
    });
    expect(ask.status).toBe(401);
    expect(ask.headers.get("www-authenticate")).toBe("Bearer");

    const chatUrl = `${gateway.url.replace("http", "ws")}/v1/conversations/c1:chat`;
    const refusal = (protocols: string[]) =>
      new Promise<number>((resolve, reject) => {
        const ws = new WebSocket(chatUrl, protocols);
        ws.once("unexpected-response", (_req, res) => resolve(res.statusCode ?? 0));
        ws.once("open", () => reject(new Error("the WebSocket opened without a valid token")));
        ws.once("error", reject);
      });
    expect(await refusal([])).toBe(401);
    expect(await refusal(["json", "bearer.not-a-token"])).toBe(401);

    // A valid token as a subprotocol (what browsers can send) opens the socket; the upstream
    // here does not serve the inference service, so the call itself fails with its code.
    const token = await tokenFor("chat@example.com");
    const ws = new WebSocket(chatUrl, ["json", `bearer.${token}`]);
    const frames: unknown[] = [];
    ws.on("message", (data) => frames.push(JSON.parse(String(data))));
    ws.once("open", () => ws.send(JSON.stringify({ question: "hello?" })));
    const code = await new Promise<number>((resolve, reject) => {
      ws.once("close", resolve);
      ws.once("error", reject);
    });
    expect(ws.protocol).toBe("json");
    expect(frames).toEqual([{ error: expect.objectContaining({ code: Code.Unimplemented }) }]);
    expect(code).toBe(4000 + Code.Unimplemented);
  });

  it("ends a failed WebSocket session even when the client's message arrives after the failure", async () => {
    const token = await tokenFor("late@example.com");
    const ws = new WebSocket(`${gateway.url.replace("http", "ws")}/v1/conversations/c1:chat`, [
      "json",
      `bearer.${token}`,
    ]);
    ws.once("open", () => ws.send(JSON.stringify({ question: "hello?" })));
    // The error frame says the session has failed; this message reaches the gateway after it.
    ws.once("message", () => ws.send(JSON.stringify({ question: "still there?" })));
    const code = await new Promise<number>((resolve, reject) => {
      ws.once("close", resolve);
      ws.once("error", reject);
    });
    expect(code).toBe(4000 + Code.Unimplemented);
  });

  it("refuses an oversized chunked body (no Content-Length) with 413", async () => {
    const chunk = new TextEncoder().encode(" ".repeat(1024));
    let sent = 0;
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        // Stops after the limit and a margin: the gateway must answer without reading it all.
        if (sent++ < 8) controller.enqueue(chunk);
        else controller.close();
      },
    });
    const res = await fetch(`${gateway.url}/v1/auth/login`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body,
      duplex: "half",
    } as RequestInit);
    expect(res.status).toBe(413);
  });

  it("transcodes over HTTP/2 (h2c) too: a GET and a HEAD without a body and POSTs with one", async () => {
    const session = http2.connect(gateway.url);
    const call = (method: string, path: string, body?: string) =>
      new Promise<{ status: number; body: string }>((resolve, reject) => {
        const stream = session.request({
          ":method": method,
          ":path": path,
          ...(body === undefined ? {} : { "content-type": "application/json" }),
        });
        let text = "";
        let status = 0;
        stream.setEncoding("utf8");
        stream.on("response", (headers) => {
          status = Number(headers[":status"]);
        });
        stream.on("data", (chunk: string) => {
          text += chunk;
        });
        stream.on("end", () => resolve({ status, body: text }));
        stream.on("error", reject);
        stream.end(body);
      });
    try {
      const jwks = await call("GET", "/.well-known/jwks.json");
      expect(jwks.status).toBe(200);
      expect((JSON.parse(jwks.body) as { keys: unknown[] }).keys.length).toBeGreaterThan(0);
      const email = `h2-${randomBytes(4).toString("hex")}@example.com`;
      const registered = await call(
        "POST",
        "/v1/auth/register",
        JSON.stringify({ email, password: "correct-horse-1", displayName: "Ada" }),
      );
      expect(registered.status, registered.body).toBe(200);
      expect(JSON.parse(registered.body)).toMatchObject({ email });
      const head = await call("HEAD", "/.well-known/jwks.json");
      expect(head).toEqual({ status: 200, body: "" });
      const malformed = await call("POST", "/v1/auth/login", '{"email": ');
      expect(malformed.status).toBe(400);
    } finally {
      session.close();
    }
  });

  /** Sends `GET <target>` as written, on a socket of its own: fetch would rewrite the target. */
  function rawGet(target: string): Promise<{ statusLine: string; body: string }> {
    const { port } = new URL(gateway.url);
    return new Promise((resolve, reject) => {
      // Written, not ended: the server closes the connection once it has answered.
      const socket = net.connect(Number(port), "127.0.0.1", () => {
        socket.write(
          `GET ${target} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nConnection: close\r\n\r\n`,
        );
      });
      let text = "";
      socket.setEncoding("utf8");
      socket.on("data", (chunk: string) => {
        text += chunk;
      });
      socket.on("end", () =>
        resolve({
          statusLine: text.split("\r\n")[0] ?? "",
          body: text.slice(text.indexOf("\r\n\r\n") + 4),
        }),
      );
      socket.on("error", reject);
    });
  }

  it("serves a request whose target is in absolute form (RFC 9112 §3.2.2)", async () => {
    const { port } = new URL(gateway.url);
    const answer = await rawGet(`http://127.0.0.1:${port}/.well-known/jwks.json`);
    expect(answer.statusLine).toBe("HTTP/1.1 200 OK");
    const body = JSON.parse(answer.body) as { keys: unknown[] };
    expect(body.keys.length).toBeGreaterThan(0);
  });

  it("routes a path by its dot segments resolved, plain or percent-encoded (RFC 3986 §5.2.4)", async () => {
    for (const target of [
      "/.well-known/./jwks.json",
      "/v1/../.well-known/jwks.json",
      "/v1/%2E%2e/.well-known/jwks.json",
    ]) {
      const answer = await rawGet(target);
      expect(answer.statusLine, target).toBe("HTTP/1.1 200 OK");
      expect((JSON.parse(answer.body) as { keys: unknown[] }).keys.length).toBeGreaterThan(0);
    }
    // Resolved to "/jwks.json": no route of the gateway.
    const outside = await rawGet("/.well-known/../jwks.json");
    expect(outside.statusLine).toBe("HTTP/1.1 404 Not Found");
  });

  it("maps AlreadyExists to 409 with code 6", async () => {
    expect((await register("twice@example.com")).status).toBe(200);
    const again = await register("twice@example.com");
    expect(again.status).toBe(409);
    expect(await again.json()).toMatchObject({ code: Code.AlreadyExists });
  });

  it("maps an upstream Unimplemented to 501 with code 12", async () => {
    const token = await tokenFor("tasks@example.com");
    // The "inference service" here is the task process, which does not serve it.
    const res = await fetch(`${gateway.url}/v1/conversations`, {
      headers: { authorization: `Bearer ${token}` },
    });
    expect(res.status).toBe(501);
    expect(await res.json()).toMatchObject({ code: Code.Unimplemented });
  });
});

describe("native clients through the gateway", () => {
  it.each(["1.1", "2"] as const)(
    "a Connect client over HTTP/%s calls GetJwks and Login",
    async (httpVersion) => {
      const users = createClient(
        UserService,
        createConnectTransport({ baseUrl: gateway.url, httpVersion }),
      );
      const jwks = await users.getJwks({});
      expect(jwks.keys.length).toBeGreaterThan(0);
      const email = `connect-${httpVersion}@example.com`;
      await users.register({ email, password: "correct-horse-1", displayName: "C" });
      const login = await users.login({ email, password: "correct-horse-1" });
      expect(login.accessToken).not.toBe("");
      const refused = await users
        .login({ email, password: "wrong-password" })
        .catch(ConnectError.from);
      expect(refused).toBeInstanceOf(ConnectError);
    },
  );

  it("a gRPC client checks the gateway's own health and calls GetJwks", async () => {
    const transport = createGrpcTransport({ baseUrl: gateway.url });
    const health = await createClient(Health, transport).check({ service: "" });
    expect(health.status).toBe(ServingStatus.SERVING);
    const jwks = await createClient(UserService, transport).getJwks({});
    expect(jwks.keys.length).toBeGreaterThan(0);
  });

  it("a gRPC-Web client over HTTP/1.1 calls GetJwks and gets Unauthenticated from GetMe", async () => {
    const users = createClient(
      UserService,
      createGrpcWebTransport({ baseUrl: gateway.url, httpVersion: "1.1" }),
    );
    expect((await users.getJwks({})).keys.length).toBeGreaterThan(0);
    const refused = await users.getMe({}).catch(ConnectError.from);
    expect(refused).toMatchObject({ code: Code.Unauthenticated });
  });

  it.each([
    ["Connect over HTTP/1.1", []],
    ["gRPC over h2c", ["--protocol", "grpc", "--http2-prior-knowledge"]],
  ])("buf curl (%s) lists the four services through reflection", async (_, flags) => {
    const { stdout, stderr, code } = await runBuf([
      "curl",
      ...flags,
      "--list-services",
      gateway.url,
    ]);
    expect(stderr).toBe("");
    expect(code).toBe(0);
    expect(stdout.trim().split("\n")).toEqual(
      expect.arrayContaining([
        "protomesh.user.v1.UserService",
        "protomesh.task.v1.TaskService",
        "protomesh.file.v1.FileService",
        "protomesh.inference.v1.InferenceService",
      ]),
    );
  });
});

describe("admission at the edge, the same for every entry", () => {
  type Entry = (method: "getMe" | "listUsers", headers: Record<string, string>) => Promise<number>;
  const codeOf = (call: Promise<unknown>): Promise<number> =>
    call.then(
      () => 0,
      (err: unknown) => ConnectError.from(err).code,
    );
  // Transports are made at the call: the gateway has not started when the table is built.
  const native =
    (transport: () => ReturnType<typeof createConnectTransport>): Entry =>
    (method, headers) =>
      codeOf(createClient(UserService, transport())[method]({}, { headers }));
  const entries: Record<string, Entry> = {
    "REST (JSON over HTTP)": async (method, headers) => {
      const path = method === "getMe" ? "/v1/users/me" : "/v1/users";
      const res = await fetch(`${gateway.url}${path}`, { headers });
      const body = (await res.json()) as { code?: number };
      return res.status === 200 ? 0 : (body.code ?? -1);
    },
    "native Connect": native(() =>
      createConnectTransport({ baseUrl: gateway.url, httpVersion: "1.1" }),
    ),
    "native gRPC": native(() => createGrpcTransport({ baseUrl: gateway.url })),
    "native gRPC-Web": native(() =>
      createGrpcWebTransport({ baseUrl: gateway.url, httpVersion: "1.1" }),
    ),
  };
  const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
  let memberToken = "";
  let revokedToken = "";

  beforeAll(async () => {
    memberToken = await tokenFor("admission-member@example.com");
    revokedToken = await tokenFor("admission-revoked@example.com");
    const users = createClient(
      UserService,
      createConnectTransport({ baseUrl: user.url, httpVersion: "1.1" }),
    );
    await users.logoutAll({}, { headers: bearer(revokedToken) });
    // Refused at once by the user service, and by the gateway once it has reloaded.
    await vi.waitFor(
      async () => {
        const code = await entries["REST (JSON over HTTP)"]?.("getMe", bearer(revokedToken));
        expect(code).toBe(Code.Unauthenticated);
      },
      { timeout: 10_000, interval: 100 },
    );
  });

  // Each case: what is sent, the verdict, and whether the gateway decides it alone. A revoked
  // account's token is refused by the gateway once it has reloaded the revocations (every 2 s),
  // and until then by the user service, with the same verdict.
  const cases: [string, "getMe" | "listUsers", () => Record<string, string>, Code, boolean][] = [
    ["no token", "getMe", () => ({}), Code.Unauthenticated, true],
    [
      "a forged token",
      "getMe",
      () => bearer("eyJhbGciOiJFZERTQSJ9.e30.c2ln"),
      Code.Unauthenticated,
      true,
    ],
    [
      "a member's token on an admin RPC",
      "listUsers",
      () => bearer(memberToken),
      Code.PermissionDenied,
      true,
    ],
    ["a revoked account's token", "getMe", () => bearer(revokedToken), Code.Unauthenticated, false],
  ];

  it.each(Object.keys(entries))(
    "gives each case the same verdict at %s, deciding at the edge what it can",
    async (name) => {
      const entry = entries[name];
      if (entry === undefined) throw new Error(name);
      const atTheEdge: string[] = [];
      for (const [, method, headersOf, code, edge] of cases) {
        const trace = traceparent();
        if (edge) atTheEdge.push(trace.split("-")[1] ?? "");
        expect(await entry(method, { ...headersOf(), traceparent: trace })).toBe(code);
      }
      // A call that reaches the user service, so that its log has caught up.
      const served = traceparent();
      expect(await entry("getMe", { ...bearer(memberToken), traceparent: served })).toBe(0);
      const traces = () => user.logs.filter((l) => l.msg === "call").map((l) => String(l.traceId));
      await expect.poll(traces).toContain(served.split("-")[1]);
      expect(traces().filter((t) => atTheEdge.includes(t))).toEqual([]);
    },
  );
});

describe("CORS at the gateway", () => {
  const preflight = (path: string, origin: string) =>
    fetch(`${gateway.url}${path}`, {
      method: "OPTIONS",
      headers: {
        origin,
        "access-control-request-method": "POST",
        "access-control-request-headers": "content-type,x-evil",
      },
    });

  it("answers a preflight from an allowed origin with 204 and its CORS headers", async () => {
    const res = await preflight("/v1/auth/login", appOrigin);
    expect(res.status).toBe(204);
    expect(Object.fromEntries(res.headers)).toMatchObject({
      "access-control-allow-origin": appOrigin,
      "access-control-allow-credentials": "true",
      "access-control-allow-methods": "POST",
      "access-control-allow-headers": "content-type",
      "access-control-max-age": "600",
      vary: "Origin",
    });
    const native = await preflight("/protomesh.user.v1.UserService/Login", appOrigin);
    expect(native.status).toBe(204);
    expect(native.headers.get("access-control-allow-methods")).toBe("POST");
  });

  it("refuses a preflight from another origin: 403, code 7, no Allow-Origin", async () => {
    const res = await preflight("/v1/auth/login", "https://evil.example");
    expect(res.status).toBe(403);
    expect(res.headers.get("access-control-allow-origin")).toBeNull();
    expect(res.headers.get("access-control-allow-credentials")).toBeNull();
    expect(res.headers.get("vary")).toBe("Origin");
    expect(await res.json()).toMatchObject({ code: Code.PermissionDenied });
  });

  it("lets an allowed origin read a REST response and its request id", async () => {
    const res = await fetch(`${gateway.url}/.well-known/jwks.json`, {
      headers: { origin: appOrigin },
    });
    expect(res.status).toBe(200);
    expect(res.headers.get("access-control-allow-origin")).toBe(appOrigin);
    expect(res.headers.get("access-control-expose-headers")).toContain("x-request-id");
    const plain = await fetch(`${gateway.url}/.well-known/jwks.json`);
    expect(plain.headers.get("access-control-allow-origin")).toBeNull();
    expect(plain.headers.get("vary")).toBeNull();
  });
});

describe("the gateway process", () => {
  it("logs one line per request and serves /readyz and /metrics", async () => {
    expect((await fetch(`${gateway.url}/readyz`)).status).toBe(200);
    // Counted per RPC: REST calls by the RPC they reached, unknown routes under no RPC.
    expect((await fetch(`${gateway.url}/.well-known/jwks.json`)).status).toBe(200);
    expect((await fetch(`${gateway.url}/v1/nowhere`)).status).toBe(404);
    const metrics = await (await fetch(`${gateway.url}/metrics`)).text();
    expect(metrics).toMatch(
      /gateway_http_requests_total\{kind="rest",rpc="\/protomesh\.user\.v1\.UserService\/GetJwks",status="200"\} [1-9]/,
    );
    expect(metrics).toMatch(/gateway_http_requests_total\{kind="rest",rpc="",status="404"\} [1-9]/);
    const line = gateway.logs.find((l) => l.msg === "request" && l.path === "/readyz");
    expect(line).toMatchObject({ method: "GET", status: 200 });
    const rest = gateway.logs.find(
      (l) => l.msg === "request" && l.path === "/.well-known/jwks.json",
    );
    expect(rest).toMatchObject({ kind: "rest", rpc: "/protomesh.user.v1.UserService/GetJwks" });
  });
});
