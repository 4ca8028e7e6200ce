import { randomUUID } from "node:crypto";
import type { IncomingMessage } from "node:http";
import { STATUS_CODES } from "node:http";
import type { Duplex } from "node:stream";
import { fromBinary, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { type WebSocket, WebSocketServer } from "ws";
import { methodPath } from "../../kit/call-policy.ts";
import { errorBodyOf } from "../../kit/error-body.ts";
import { addressOf, admit, clientKeyOf } from "../admission/rate-limit.ts";
import { forwardedHeadersOf, headerReader, timeoutOf } from "../exchange.ts";
import { httpStatusOf } from "../http-error.ts";
import type { Route } from "../routing/route-table.ts";
import { codeName } from "../upstream/connect-wire.ts";
import type { ServiceUpstream } from "../upstream/service-upstream.ts";
import type { StreamCall } from "../upstream/upstream.ts";
import { bindRequest } from "./request-binding.ts";
import { bindResponse } from "./response-binding.ts";
import type { TranscoderOptions } from "./transcoder.ts";

/** What the WebSocket side of the gateway needs: what the REST side does, and more. */
export interface WebSocketGatewayOptions
  extends Pick<
    TranscoderOptions,
    "routes" | "upstreams" | "authenticate" | "deadline" | "rateLimits" | "trustedProxies" | "log"
  > {
  /** The largest message a client may send in one frame. */
  readonly maxMessageBytes: number;
  /** True while the gateway drains: new sessions are refused with 503. */
  readonly draining: () => boolean;
}

// A client that cannot set headers (a browser) offers its token as a subprotocol
// "bearer.<token>" beside the subprotocol it speaks.
const bearerProtocol = "bearer.";

// Close codes 4000-4999 are the application's: 4000 + the Connect code of the failure.
const closeCodeBase = 4000;

/**
 * Creates the WebSocket side of the gateway: a bidirectional-streaming RPC is served on its
 * route's path. Each text (or binary) frame the client sends is one request message in JSON
 * (the path variables bound into each), each response message is one text frame. The gateway
 * closes with 1000 when the RPC ends, and after a final `{"error": ...}` frame with
 * 4000 + the Connect code when it fails; closing the socket cancels the RPC.
 */
export function createWebSocketGateway(options: WebSocketGatewayOptions) {
  const { routes, upstreams, authenticate, deadline, maxMessageBytes, draining, log } = options;
  const { rateLimits, trustedProxies } = options;
  const server = new WebSocketServer({
    noServer: true,
    maxPayload: maxMessageBytes,
    handleProtocols: (offered) => [...offered].find((p) => !p.startsWith(bearerProtocol)) ?? false,
  });

  return (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    upgrade(req, socket, head).catch((err: unknown) => {
      const error = ConnectError.from(err);
      if (!(err instanceof ConnectError)) log.error({ err }, "websocket upgrade failed");
      refuse(socket, error);
    });
  };

  async function upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    if (draining()) throw new ConnectError("gateway is shutting down", Code.Unavailable);
    if ((req.headers.upgrade ?? "").toLowerCase() !== "websocket") {
      throw new ConnectError("only WebSocket upgrades are served", Code.InvalidArgument);
    }
    const url = new URL(req.url ?? "/", "http://gateway");
    const { route, bindings } = bidiRouteOf(url.pathname);
    const method = route.method;
    const upstream = upstreams.get(method.parent.typeName);
    if (upstream === undefined) throw new Error(`no upstream for ${method.parent.typeName}`);
    const headers = forwardedHeadersOf(req);
    headers["x-request-id"] ??= randomUUID();
    const token = protocolsOf(req).find((p) => p.startsWith(bearerProtocol));
    if (headers.authorization === undefined && token !== undefined) {
      headers.authorization = `Bearer ${token.slice(bearerProtocol.length)}`;
    }
    const identity = await authenticate(method, headerReader(headers));
    // One token per session, not per message.
    const client = clientKeyOf(identity?.userId, addressOf(req, trustedProxies));
    await admit(rateLimits.take(client, method));
    // The deadline covers the whole session.
    const timeoutMs = timeoutOf(deadline, methodPath(method), req);
    server.handleUpgrade(req, socket, head, (ws) => {
      relay(ws, route, bindings, url.searchParams, upstream, headers, timeoutMs);
    });
  }

  function bidiRouteOf(path: string): { route: Route; bindings: Map<string, string> } {
    // A WebSocket opens with GET whatever method the route declares: match by path alone.
    const found = routes.routes
      .map((route) => ({ route, bindings: route.template.match(path) }))
      .filter((m) => m.bindings !== undefined);
    if (found.length === 0) throw new ConnectError(`no route for ${path}`, Code.NotFound);
    const bidi = found.find((m) => m.route.method.methodKind === "bidi_streaming");
    if (bidi?.bindings === undefined) {
      throw new ConnectError(
        `${path} is not a bidirectional-streaming RPC; call it over plain HTTP`,
        Code.InvalidArgument,
      );
    }
    return { route: bidi.route, bindings: bidi.bindings };
  }

  function relay(
    ws: WebSocket,
    route: Route,
    bindings: ReadonlyMap<string, string>,
    query: URLSearchParams,
    upstream: ServiceUpstream,
    headers: Record<string, string>,
    timeoutMs: number,
  ): void {
    const { method } = route;
    const path = methodPath(method);
    const abort = new AbortController();
    const started = performance.now();
    let stream: StreamCall;
    try {
      stream = upstream.stream(method, { headers, timeoutMs, signal: abort.signal });
    } catch (err) {
      // No instance can take it (its breaker is open): the session ends as a failed call does.
      closeWithError(ws, ConnectError.from(err));
      return;
    }
    let finished = false;
    const fail = (err: unknown) => {
      if (finished) return;
      finished = true;
      const error = ConnectError.from(err);
      stream.cancel(error);
      closeWithError(ws, error);
    };
    ws.once("close", (code) => {
      finished = true;
      abort.abort();
      const durationMs = Math.round((performance.now() - started) * 100) / 100;
      log.info({ rpc: path, code, durationMs, requestId: headers["x-request-id"] }, "websocket");
    });

    // One message at a time, in order: the socket is paused while the upstream is full.
    let sending = Promise.resolve();
    ws.on("message", (data) => {
      ws.pause();
      sending = sending
        .then(() => {
          const bytes = Array.isArray(data)
            ? Buffer.concat(data)
            : Buffer.isBuffer(data)
              ? data
              : Buffer.from(data);
          const text = bytes.toString("utf8");
          let body: unknown;
          try {
            body = JSON.parse(text);
          } catch (err) {
            throw new ConnectError(
              `malformed JSON message: ${(err as Error).message}`,
              Code.InvalidArgument,
            );
          }
          const message = bindRequest(route, bindings, query, body);
          return stream.send(toBinary(method.input, message));
        })
        .catch((err: unknown) => fail(err))
        // Also after a failure, and for a message that arrives once the session has failed: a
        // paused socket would never read the client's half of the closing handshake.
        .finally(() => ws.resume());
    });

    (async () => {
      for await (const bytes of stream.responses) {
        const json = JSON.stringify(bindResponse(route, fromBinary(method.output, bytes)));
        // Waits for each frame to reach the socket, so a slow client slows the upstream.
        await new Promise<void>((resolve, reject) =>
          ws.send(json, (err) => (err === undefined || err === null ? resolve() : reject(err))),
        );
      }
    })().then(
      () => {
        if (finished) return;
        finished = true;
        ws.close(1000, "ok");
      },
      (err: unknown) => fail(err),
    );
  }
}

/** Ends a session with a last `{"error": ...}` frame and close code 4000 + the error's code. */
function closeWithError(ws: WebSocket, error: ConnectError): void {
  ws.send(JSON.stringify({ error: errorBodyOf(error) }));
  ws.close(closeCodeBase + error.code, codeName(error.code));
}

/** The subprotocols a WebSocket client offered. */
function protocolsOf(req: IncomingMessage): string[] {
  const header = req.headers["sec-websocket-protocol"];
  if (header === undefined) return [];
  return header
    .split(",")
    .map((p) => p.trim())
    .filter((p) => p !== "");
}

/** Answers a refused upgrade with a JSON error and closes the connection. */
function refuse(socket: Duplex, error: ConnectError): void {
  const status = httpStatusOf(error.code);
  const body = JSON.stringify(errorBodyOf(error));
  const lines = [
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ""}`,
    "content-type: application/json",
    "cache-control: no-store",
    `content-length: ${Buffer.byteLength(body)}`,
    "connection: close",
  ];
  // The error's own headers: a challenge, rate-limit headers.
  error.metadata.forEach((value, name) => {
    if (name === "www-authenticate" || name === "retry-after" || name.startsWith("ratelimit-")) {
      lines.push(`${name}: ${value}`);
    }
  });
  socket.end(`${lines.join("\r\n")}\r\n\r\n${body}`);
}
