// The file suite's S3 endpoint: s3rver, a JavaScript S3 test server that keeps objects in a
// directory, in a process of its own on the port the bench gives it. A stand-in for a real
// object store: the figures against it measure the file service's S3 adapter, not S3.
import { mkdir } from "node:fs/promises";
import S3rver from "s3rver";
import { z } from "zod";
import { loadConfigOrExit, portSchema } from "../kit/config.ts";

const config = loadConfigOrExit(
  "s3-server",
  z.object({ S3_DIR: z.string().min(1), PORT: portSchema, HOST: z.string().default("127.0.0.1") }),
);

await mkdir(config.S3_DIR, { recursive: true });
const server = new S3rver({
  address: config.HOST,
  port: config.PORT,
  silent: true,
  directory: config.S3_DIR,
});
await server.run();
for (const signal of ["SIGTERM", "SIGINT"] as const) {
  process.once(signal, () => void server.close().finally(() => process.exit(0)));
}
