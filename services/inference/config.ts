import type { z } from "zod";
import { authConfigShape } from "../../kit/auth/remote-verifier.ts";
import { serverConfigSchema } from "../../kit/config.ts";

/** Environment variables of the inference service, validated at start. */
export const inferenceConfigSchema = serverConfigSchema(50054).extend(authConfigShape);

/** The inference service's validated configuration. */
export type InferenceConfig = Readonly<z.infer<typeof inferenceConfigSchema>>;
