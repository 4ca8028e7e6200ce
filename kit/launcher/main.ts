import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { z } from "zod";
import { loadConfigOrExit, millisSchema, portSchema } from "../config.ts";
import { launchMesh, type ProcessSpec } from "./launcher.ts";

const schema = z.object({
  HOST: z.string().default("127.0.0.1"),
  USER_PORT: portSchema.default(50051),
  TASK_PORT: portSchema.default(50052),
  FILE_PORT: portSchema.default(50053),
  INFERENCE_PORT: portSchema.default(50054),
  GATEWAY_PORT: portSchema.default(8080),
  MESH_START_TIMEOUT_MS: millisSchema.default(60_000),
  MESH_STOP_TIMEOUT_MS: millisSchema.default(15_000),
  MESH_RESTART_BACKOFF_MS: millisSchema.default(1000),
  MESH_RESTART_BACKOFF_MAX_MS: millisSchema.default(30_000),
  MESH_RESTART_RETRIES: z.coerce.number().int().min(0).default(5),
  MESH_RESTART_STABLE_MS: millisSchema.default(10_000),
  DATA_DIR: z.string().default(".data"),
});

const config = loadConfigOrExit("mesh", schema);

// The compiled entries sit beside this file's own compiled output in dist/.
const entry = (path: string) => fileURLToPath(new URL(`../../${path}`, import.meta.url));
// People watching a terminal get readable logs; pipes and files keep JSON lines.
const childEnv: Record<string, string> =
  process.stdout.isTTY && process.env.LOG_FORMAT === undefined
    ? { LOG_FORMAT: "pretty", FORCE_COLOR: "1" }
    : {};

// The static registry of the mesh: every process learns where the others are from here.
const urlOf = (port: number) => `http://${config.HOST}:${port}`;
const registry = {
  USER_SERVICE_URL: urlOf(config.USER_PORT),
  TASK_SERVICE_URL: urlOf(config.TASK_PORT),
  FILE_SERVICE_URL: urlOf(config.FILE_PORT),
  INFERENCE_SERVICE_URL: urlOf(config.INFERENCE_PORT),
};
// Links in mail lead to the gateway this mesh runs, unless PUBLIC_URL names another address.
const publicUrl = { PUBLIC_URL: process.env.PUBLIC_URL ?? urlOf(config.GATEWAY_PORT) };
const env = { ...childEnv, ...registry, ...publicUrl };
const specs: ProcessSpec[] = [
  { name: "user", entry: entry("services/user/main.js"), port: config.USER_PORT, env },
  { name: "task", entry: entry("services/task/main.js"), port: config.TASK_PORT, env },
  { name: "file", entry: entry("services/file/main.js"), port: config.FILE_PORT, env },
  {
    name: "inference",
    entry: entry("services/inference/main.js"),
    port: config.INFERENCE_PORT,
    env,
  },
  { name: "gateway", entry: entry("gateway/main.js"), port: config.GATEWAY_PORT, env },
];

const mesh = launchMesh(specs, {
  host: config.HOST,
  startTimeoutMs: config.MESH_START_TIMEOUT_MS,
  stopTimeoutMs: config.MESH_STOP_TIMEOUT_MS,
  restart: {
    backoffMs: config.MESH_RESTART_BACKOFF_MS,
    backoffMaxMs: config.MESH_RESTART_BACKOFF_MAX_MS,
    retries: config.MESH_RESTART_RETRIES,
    stableMs: config.MESH_RESTART_STABLE_MS,
  },
  statusFile: join(config.DATA_DIR, "mesh-status.json"),
});

let stopping = false;
const stop = async (code: number) => {
  if (stopping) return;
  stopping = true;
  await mesh.stop();
  process.exit(code);
};
// Ctrl-C reaches every process of the group, and the launcher asks each to drain as well:
// both are one request. Only a second signal to the launcher cuts the drain short.
const onSignal = (signal: NodeJS.Signals) => {
  if (!stopping) {
    process.stdout.write(`mesh | ${signal}: stopping the mesh (again to kill it at once)\n`);
    void stop(0);
    return;
  }
  process.stderr.write(`mesh | second signal: killing every process\n`);
  mesh.kill();
  process.exit(1);
};
process.on("SIGINT", onSignal);
process.on("SIGTERM", onSignal);
mesh.failed.catch(async (err: unknown) => {
  process.stderr.write(`mesh | ${(err as Error).message}\nmesh | stopping the mesh\n`);
  await stop(1);
});

try {
  await mesh.ready;
  const lines = specs.map((s) => `  ${s.name.padEnd(10)} ${urlOf(s.port)}`);
  const gateway = urlOf(config.GATEWAY_PORT);
  process.stdout.write(
    `mesh | ready:\n${lines.join("\n")}\n` +
      `mesh | gateway (REST, Connect, gRPC, reflection): ${gateway}\n` +
      `mesh | API docs: ${gateway}/docs\n` +
      `mesh | OpenAPI: ${gateway}/openapi.json\n`,
  );
} catch (err) {
  process.stderr.write(`mesh | ${(err as Error).message}\nmesh | stopping the mesh\n`);
  await stop(1);
}
