import { describe, expect, it } from "vitest";
import { UserService } from "../../gen/protomesh/user/v1/user_pb.ts";
import { gatewayConfigSchema } from "../config.ts";
import { createRouteTable } from "../routing/route-table.ts";
import {
  type CorsPolicy,
  createCorsPolicy,
  isPreflight,
  preflightAnswer,
  responseHeaders,
  routeMethodsOf,
} from "./cors.ts";

const app = "https://app.example.com";
const dev = "http://localhost:5173";
const policy = (allowCredentials = false): CorsPolicy =>
  createCorsPolicy({ CORS_ORIGINS: [app, dev], CORS_ALLOW_CREDENTIALS: allowCredentials });

describe("CORS configuration", () => {
  const parse = (env: Record<string, string>) => gatewayConfigSchema.parse(env);

  it("defaults to no origins and no credentials", () => {
    expect(parse({})).toMatchObject({ CORS_ORIGINS: [], CORS_ALLOW_CREDENTIALS: false });
  });

  it("reads a comma-separated list, normalizing each origin", () => {
    const config = parse({
      CORS_ORIGINS: " https://App.Example.com/ , http://localhost:5173,https://x.example:443",
      CORS_ALLOW_CREDENTIALS: "true",
    });
    expect(config.CORS_ORIGINS).toEqual([app, dev, "https://x.example"]);
    expect(config.CORS_ALLOW_CREDENTIALS).toBe(true);
  });

  it.each([
    "*",
    "null",
    "app.example.com",
    "https://app.example.com/path",
    "https://app.example.com?x=1",
    "https://user@app.example.com",
    "file:///tmp/index.html",
  ])("refuses %s", (origin) => {
    expect(gatewayConfigSchema.safeParse({ CORS_ORIGINS: origin }).success).toBe(false);
  });
});

describe("CORS headers of actual responses", () => {
  it("adds nothing to a request without Origin", () => {
    expect(responseHeaders(policy(), undefined)).toEqual({});
  });

  it("echoes a listed origin exactly, with Vary and the exposed headers", () => {
    const headers = responseHeaders(policy(), dev);
    expect(headers).toMatchObject({ vary: "Origin", "access-control-allow-origin": dev });
    expect(headers["access-control-allow-credentials"]).toBeUndefined();
    const exposed = headers["access-control-expose-headers"]?.split(", ");
    expect(exposed).toEqual(
      expect.arrayContaining(["x-request-id", "grpc-status", "grpc-message"]),
    );
  });

  it("allows credentials only when configured, and never with *", () => {
    const headers = responseHeaders(policy(true), app);
    expect(headers["access-control-allow-credentials"]).toBe("true");
    expect(headers["access-control-allow-origin"]).toBe(app);
  });

  it.each([
    ["an unlisted origin", "https://evil.example"],
    ["a listed origin's look-alike", "https://app.example.com.evil.example"],
    ["a different scheme", "http://app.example.com"],
    ["the opaque origin null", "null"],
  ])("gives %s only Vary: Origin", (_, origin) => {
    expect(responseHeaders(policy(true), origin)).toEqual({ vary: "Origin" });
  });

  it("never allows null, even if it got into the list", () => {
    const lax = createCorsPolicy({ CORS_ORIGINS: ["null"], CORS_ALLOW_CREDENTIALS: false });
    expect(responseHeaders(lax, "null")).toEqual({ vary: "Origin" });
    expect(
      preflightAnswer(lax, { origin: "null", method: "POST", headers: undefined }, []),
    ).toMatchObject({ status: 403 });
  });

  it("allows no origin at all by default", () => {
    const none = createCorsPolicy(gatewayConfigSchema.parse({}));
    expect(responseHeaders(none, app)).toEqual({ vary: "Origin" });
  });
});

describe("CORS preflights", () => {
  const request = { origin: app, method: "POST", headers: "Content-Type, X-Evil, authorization" };

  it("answers 204 with the methods, the allowed requested headers and a max age", () => {
    const answer = preflightAnswer(policy(), request, ["GET", "PATCH"]);
    expect(answer).toEqual({
      status: 204,
      headers: {
        vary: "Origin",
        "access-control-allow-origin": app,
        "access-control-allow-methods": "GET, PATCH",
        "access-control-allow-headers": "content-type, authorization",
        "access-control-max-age": "600",
      },
    });
  });

  it("adds Allow-Credentials only when configured", () => {
    expect(preflightAnswer(policy(true), request, ["POST"]).headers).toMatchObject({
      "access-control-allow-credentials": "true",
    });
    expect(
      preflightAnswer(policy(false), request, ["POST"]).headers["access-control-allow-credentials"],
    ).toBeUndefined();
  });

  it("leaves out Allow-Headers when none requested is allowed", () => {
    const answer = preflightAnswer(policy(), { ...request, headers: "x-evil, cookie" }, ["POST"]);
    expect(answer.headers["access-control-allow-headers"]).toBeUndefined();
  });

  it("accepts every header a Connect or gRPC-Web client sends", () => {
    const sent = "connect-protocol-version,connect-timeout-ms,grpc-timeout,x-grpc-web,x-user-agent";
    const answer = preflightAnswer(policy(), { ...request, headers: sent }, ["POST"]);
    expect(answer.headers["access-control-allow-headers"]).toBe(sent.split(",").join(", "));
  });

  it("refuses an unlisted origin with 403 and only Vary", () => {
    const answer = preflightAnswer(policy(true), { ...request, origin: "https://evil.example" }, [
      "POST",
    ]);
    expect(answer).toEqual({ status: 403, headers: { vary: "Origin" } });
  });

  it("recognizes a preflight by OPTIONS, Origin and Access-Control-Request-Method", () => {
    const headers = { origin: app, "access-control-request-method": "POST" };
    expect(isPreflight({ method: "OPTIONS", headers })).toBe(true);
    expect(isPreflight({ method: "OPTIONS", headers: { origin: app } })).toBe(false);
    expect(
      isPreflight({ method: "OPTIONS", headers: { "access-control-request-method": "POST" } }),
    ).toBe(false);
    expect(isPreflight({ method: "POST", headers })).toBe(false);
  });
});

describe("the methods of a path", () => {
  const routes = createRouteTable([UserService]);

  it("lists what the route table accepts on it", () => {
    expect(routeMethodsOf(routes, "/v1/auth/login", "POST")).toEqual(["POST"]);
    expect(routeMethodsOf(routes, "/v1/users/me", "PATCH")).toEqual([
      "DELETE",
      "GET",
      "HEAD",
      "PATCH",
    ]);
  });

  it("lists none for an unknown or malformed path", () => {
    expect(routeMethodsOf(routes, "/v1/nothing/here", "GET")).toEqual([]);
    expect(routeMethodsOf(routes, "/v1/users/%zz", "GET")).toEqual([]);
  });
});
