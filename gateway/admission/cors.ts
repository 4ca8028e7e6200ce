import { Code, ConnectError } from "@connectrpc/connect";
import { z } from "zod";
import type { NodeRequest } from "../../kit/node-http.ts";
import type { GatewayResponse } from "../exchange.ts";
import { sendError } from "../http-error.ts";
import { methodsOf, type RouteTable } from "../routing/route-table.ts";

/** Which browser origins may call the gateway, read from CORS_ORIGINS and CORS_ALLOW_CREDENTIALS. */
export interface CorsPolicy {
  /** Serialized origins ("https://app.example.com"), compared exactly; empty allows none. */
  readonly origins: ReadonlySet<string>;
  /** Whether browsers may send cookies or HTTP authentication along (credentials mode "include"). */
  readonly allowCredentials: boolean;
}

/** A preflight's answer: 204 with the CORS headers, or 403 for an origin that is not allowed. */
export interface PreflightAnswer {
  readonly status: 204 | 403;
  readonly headers: Record<string, string>;
}

/** The preflight's own request headers (Fetch standard, "CORS-preflight request"). */
export interface PreflightRequest {
  readonly origin: string;
  /** Access-Control-Request-Method. */
  readonly method: string;
  /** Access-Control-Request-Headers, a comma-separated list, if sent. */
  readonly headers: string | undefined;
}

/** How long a browser may cache a preflight's answer, in seconds. */
export const preflightMaxAgeSeconds = 600;

// Request headers a browser client may send: REST (authorization, content-type), tracing,
// request ids, what Connect and gRPC-Web clients add, and tus uploads' (tus-js-client, Uppy).
// Anything else fails the preflight.
const allowedRequestHeaders: ReadonlySet<string> = new Set([
  "authorization",
  "content-type",
  "x-request-id",
  "traceparent",
  "tracestate",
  "connect-protocol-version",
  "connect-timeout-ms",
  "grpc-timeout",
  "x-grpc-web",
  "x-user-agent",
  "tus-resumable",
  "upload-length",
  "upload-metadata",
  "upload-offset",
  "file-id",
]);

// Response headers scripts may read beyond the CORS-safelisted ones (Fetch standard,
// "CORS-safelisted response-header name"): the request id, gRPC-Web's status in headers
// (trailers-only responses), the message encodings Connect and gRPC-Web clients decode with,
// and what tus clients read of an upload and of the server.
const exposedHeaders = [
  "x-request-id",
  "grpc-status",
  "grpc-message",
  "grpc-status-details-bin",
  "grpc-encoding",
  "connect-content-encoding",
  "location",
  "tus-resumable",
  "tus-version",
  "tus-extension",
  "tus-max-size",
  "upload-offset",
  "upload-length",
  "upload-metadata",
  "upload-expires",
].join(", ");

/**
 * CORS_ORIGINS: a comma-separated list of origins, each normalized to its serialization
 * (lower-case scheme and host, no default port, no trailing slash). Refuses paths, queries,
 * credentials, "*" and anything whose origin is opaque ("null"): the allow-list is exact.
 */
export const corsOriginsSchema = z
  .string()
  .default("")
  .transform((value, ctx) => {
    const origins: string[] = [];
    for (const entry of value.split(",")) {
      const given = entry.trim();
      if (given === "") continue;
      const origin = originOf(given);
      if (origin === undefined) {
        ctx.addIssue({
          code: "custom",
          message: `"${given}" is not an origin: write scheme://host[:port], for example https://app.example.com`,
        });
        continue;
      }
      origins.push(origin);
    }
    return origins;
  });

function originOf(given: string): string | undefined {
  let url: URL;
  try {
    url = new URL(given);
  } catch {
    return undefined;
  }
  // Opaque origins (file:, data:, sandboxed documents) all serialize to "null": listing one
  // would admit every such document (Fetch standard, "origin" header; HTML, "opaque origin").
  if (url.origin === "null") return undefined;
  const bare = url.pathname === "/" && url.search === "" && url.hash === "";
  if (!bare || url.username !== "" || url.password !== "") return undefined;
  return url.origin;
}

/** Builds the policy from the parsed configuration. */
export function createCorsPolicy(config: {
  readonly CORS_ORIGINS: readonly string[];
  readonly CORS_ALLOW_CREDENTIALS: boolean;
}): CorsPolicy {
  return {
    origins: new Set(config.CORS_ORIGINS),
    allowCredentials: config.CORS_ALLOW_CREDENTIALS,
  };
}

/** Whether `origin` (an Origin header value) is on the allow-list; "null" never is. */
export function isAllowedOrigin(policy: CorsPolicy, origin: string): boolean {
  return origin !== "null" && policy.origins.has(origin);
}

/**
 * The CORS headers of an actual (non-preflight) response. Without an Origin header, none: the
 * request is not a cross-origin one. Otherwise `Vary: Origin` always, since the answer differs
 * by origin and a shared cache must not hand one origin's response to another (Fetch standard,
 * "CORS protocol and HTTP caches"); the allow headers only for a listed origin, which is echoed
 * exactly, never `*` (a wildcard would not work with credentials and would admit every origin).
 */
export function responseHeaders(
  policy: CorsPolicy,
  origin: string | undefined,
): Record<string, string> {
  if (origin === undefined) return {};
  if (!isAllowedOrigin(policy, origin)) return { vary: "Origin" };
  return {
    vary: "Origin",
    "access-control-allow-origin": origin,
    ...credentialsHeader(policy),
    "access-control-expose-headers": exposedHeaders,
  };
}

/**
 * The answer to a preflight for a resource that accepts `methods`. The methods are listed as
 * they are (the browser checks the requested one against them); of the requested headers only
 * those on the allow-list are echoed, so a preflight asking for any other fails in the browser.
 */
export function preflightAnswer(
  policy: CorsPolicy,
  request: PreflightRequest,
  methods: readonly string[],
): PreflightAnswer {
  if (!isAllowedOrigin(policy, request.origin)) return { status: 403, headers: { vary: "Origin" } };
  const headers: Record<string, string> = {
    vary: "Origin",
    "access-control-allow-origin": request.origin,
    ...credentialsHeader(policy),
    "access-control-max-age": String(preflightMaxAgeSeconds),
  };
  if (methods.length > 0) headers["access-control-allow-methods"] = methods.join(", ");
  const allowed = allowedHeadersOf(request.headers);
  if (allowed.length > 0) headers["access-control-allow-headers"] = allowed.join(", ");
  return { status: 204, headers };
}

// Only "true" is meaningful: the header is left out rather than set to "false" (Fetch standard,
// "CORS check").
function credentialsHeader(policy: CorsPolicy): Record<string, string> {
  return policy.allowCredentials ? { "access-control-allow-credentials": "true" } : {};
}

function allowedHeadersOf(requested: string | undefined): string[] {
  if (requested === undefined) return [];
  const names = requested.split(",").map((name) => name.trim().toLowerCase());
  return [...new Set(names)].filter((name) => allowedRequestHeaders.has(name));
}

/**
 * The HTTP methods the route table accepts on a raw path, sorted; for a route of any method
 * ("*"), the requested one. A malformed path accepts none.
 */
export function routeMethodsOf(routes: RouteTable, rawPath: string, requested: string): string[] {
  const methods = new Set<string>();
  for (const route of routes.routes) {
    let bindings: Map<string, string> | undefined;
    try {
      bindings = route.template.match(rawPath);
    } catch {
      return [];
    }
    if (bindings === undefined) continue;
    for (const method of route.httpMethod === "*" ? [requested] : methodsOf(route)) {
      methods.add(method);
    }
  }
  return [...methods].sort();
}

/**
 * Whether a request is a CORS preflight: OPTIONS with Origin and Access-Control-Request-Method
 * (Fetch standard, "CORS-preflight request"). Any other OPTIONS request is routed as usual.
 */
export function isPreflight(req: NodeRequest): boolean {
  return (
    req.method === "OPTIONS" &&
    typeof req.headers.origin === "string" &&
    typeof req.headers["access-control-request-method"] === "string"
  );
}

/**
 * Applies the policy to one request: answers a preflight (without calling any upstream) and
 * returns true, or sets the CORS headers of the coming response and returns false.
 * `methodsOf` lists the methods a path accepts, given the requested one.
 */
export function applyCors(
  policy: CorsPolicy,
  req: NodeRequest,
  res: GatewayResponse,
  methodsOf: (path: string, requested: string) => readonly string[],
  path: string,
): boolean {
  const origin = req.headers.origin;
  if (isPreflight(req) && typeof origin === "string") {
    const method = String(req.headers["access-control-request-method"]);
    const answer = preflightAnswer(
      policy,
      { origin, method, headers: req.headers["access-control-request-headers"] },
      methodsOf(path, method),
    );
    if (answer.status === 403) {
      sendError(
        res,
        new ConnectError(
          `cross-origin requests from ${JSON.stringify(origin)} are not allowed`,
          Code.PermissionDenied,
        ),
        { headers: answer.headers },
      );
    } else {
      res.writeHead(answer.status, answer.headers);
      res.end();
    }
    return true;
  }
  for (const [name, value] of Object.entries(responseHeaders(policy, origin))) {
    res.setHeader(name, value);
  }
  return false;
}
