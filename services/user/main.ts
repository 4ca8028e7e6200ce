import { runProcess } from "../../kit/run-process.ts";
import { userConfigSchema } from "./config.ts";
import { createUserServer } from "./server.ts";

await runProcess("user", userConfigSchema, (config, log) => createUserServer({ config, log }));
