import { runProcess } from "../kit/run-process.ts";
import { gatewayConfigSchema } from "./config.ts";
import { createGatewayServer } from "./server.ts";

await runProcess("gateway", gatewayConfigSchema, (config, log) =>
  createGatewayServer({ config, log }),
);
