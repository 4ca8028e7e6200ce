import { runProcess } from "../../kit/run-process.ts";
import { fileConfigSchema } from "./config.ts";
import { createFileServer } from "./server.ts";

await runProcess("file", fileConfigSchema, (config, log) => createFileServer({ config, log }));
