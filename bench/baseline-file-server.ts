// The file suite's baseline: the least a Node.js server can do to store a file and serve it
// back. POST /files/<name> pipes the request body into a file of its directory, GET
// /files/<name> streams that file out; no auth, metadata, database, digest or protocol hop.
import { createReadStream, createWriteStream } from "node:fs";
import { stat } from "node:fs/promises";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import { z } from "zod";
import { loadConfigOrExit, portSchema } from "../kit/config.ts";

const config = loadConfigOrExit(
  "baseline-file-server",
  z.object({
    // Where the files go: the same disk as the file service's store.
    BASELINE_DIR: z.string().min(1),
    PORT: portSchema.default(0),
    HOST: z.string().default("127.0.0.1"),
  }),
);

const fileRoute = /^\/files\/([A-Za-z0-9_-]+)$/;

const server = http.createServer((req, res) => {
  const name = fileRoute.exec(req.url ?? "")?.[1];
  if (name === undefined) {
    res.writeHead(404).end();
    return;
  }
  const path = join(config.BASELINE_DIR, name);
  const served = req.method === "POST" ? store(req, res, path) : serve(res, path);
  served.catch((err: Error) => {
    if (res.headersSent) res.destroy(err);
    else res.writeHead(500).end(err.message);
  });
});

async function store(req: http.IncomingMessage, res: http.ServerResponse, path: string) {
  await pipeline(req, createWriteStream(path));
  const { size } = await stat(path);
  res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ size }));
}

async function serve(res: http.ServerResponse, path: string) {
  const { size } = await stat(path);
  res.writeHead(200, { "content-type": "application/octet-stream", "content-length": size });
  await pipeline(createReadStream(path), res);
}

for (const signal of ["SIGTERM", "SIGINT"] as const) process.once(signal, () => process.exit(0));

server.listen(config.PORT, config.HOST, () => {
  const { port } = server.address() as AddressInfo;
  console.log(JSON.stringify({ msg: "listening", address: `${config.HOST}:${port}` }));
});
