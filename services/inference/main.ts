import { runProcess } from "../../kit/run-process.ts";
import { inferenceConfigSchema } from "./config.ts";
import { createInferenceServer } from "./server.ts";

await runProcess("inference", inferenceConfigSchema, (config, log) =>
  createInferenceServer({ config, log }),
);
