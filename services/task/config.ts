import type { z } from "zod";
import { authConfigShape } from "../../kit/auth/remote-verifier.ts";
import { serverConfigSchema } from "../../kit/config.ts";

/** Environment variables of the task service, validated at start. */
export const taskConfigSchema = serverConfigSchema(50052).extend(authConfigShape);

/** The task service's validated configuration. */
export type TaskConfig = Readonly<z.infer<typeof taskConfigSchema>>;
