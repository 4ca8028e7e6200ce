// The benchmark's baseline (setup d): the least a Node.js proxy can do for the gateway's REST
// call. It maps GET /v1/shelves/<id> to the Connect JSON call GetShelf on a keep-alive undici
// pool and streams the answer back, with no routing table, binding, auth, deadline,
// cancellation, logging or metrics: what is left is the cost of the hop itself.
import http from "node:http";
import type { AddressInfo } from "node:net";
import { Pool } from "undici";
import { z } from "zod";
import { loadConfigOrExit, portSchema } from "../kit/config.ts";

const config = loadConfigOrExit(
  "undici-proxy",
  z.object({
    UPSTREAM_URL: z.url(),
    PORT: portSchema.default(0),
    HOST: z.string().default("127.0.0.1"),
    // One upstream connection per client connection, as nginx's keepalive pool in the bench.
    UPSTREAM_CONNECTIONS: z.coerce.number().int().positive().default(32),
  }),
);

const upstream = new Pool(config.UPSTREAM_URL, { connections: config.UPSTREAM_CONNECTIONS });
const shelfRoute = /^\/v1\/shelves\/([A-Za-z0-9_-]+)$/;
const upstreamPath = "/protomesh.gatewaytest.v1.LibraryService/GetShelf";
const upstreamHeaders = { "content-type": "application/json" };
const passedHeaders = ["content-type", "content-length"] as const;

const server = http.createServer((req, res) => {
  const match = req.method === "GET" ? shelfRoute.exec(req.url ?? "") : null;
  if (match === null) {
    res.writeHead(404).end();
    return;
  }
  // undici's lowest-level API: the answer goes to the client chunk by chunk as it arrives,
  // with no stream objects or promises in between.
  upstream.dispatch(
    {
      path: upstreamPath,
      method: "POST",
      headers: upstreamHeaders,
      body: `{"shelfId":"${match[1]}"}`,
    },
    {
      // Optional in undici's types, but its request validation insists on one.
      onRequestStart() {},
      onResponseStart(_controller, statusCode, headers) {
        const out: Record<string, string> = {};
        for (const name of passedHeaders) {
          const value = headers[name];
          if (typeof value === "string") out[name] = value;
        }
        res.writeHead(statusCode, out);
      },
      onResponseData(controller, chunk) {
        // A client that went away takes no more data: the rest is read and dropped, so that
        // the upstream connection is free again (paused, it would wait for the service's
        // keep-alive timeout to close it).
        if (res.write(chunk) || res.destroyed) return;
        controller.pause();
        const resume = () => controller.resume();
        res.once("drain", resume);
        res.once("close", resume);
      },
      onResponseEnd() {
        res.end();
      },
      onResponseError() {
        if (res.headersSent) res.destroy();
        else res.writeHead(502).end();
      },
    },
  );
});

// Exit cleanly when stopped, so that a run under --cpu-prof writes its profile.
for (const signal of ["SIGTERM", "SIGINT"] as const) process.once(signal, () => process.exit(0));

server.listen(config.PORT, config.HOST, () => {
  const { port } = server.address() as AddressInfo;
  // The line the bench (and test/support/process.ts) waits for.
  console.log(JSON.stringify({ msg: "listening", address: `${config.HOST}:${port}` }));
});
