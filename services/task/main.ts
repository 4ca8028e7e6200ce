import { runProcess } from "../../kit/run-process.ts";
import { taskConfigSchema } from "./config.ts";
import { createTaskServer } from "./server.ts";

await runProcess("task", taskConfigSchema, (config, log) => createTaskServer({ config, log }));
