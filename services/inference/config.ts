import type { z } from "zod";
import { serverConfigSchema } from "../../kit/config.ts";

/** Environment variables of the inference service, validated at start. */
export const inferenceConfigSchema = serverConfigSchema(50054);

/** The inference service's validated configuration. */
export type InferenceConfig = Readonly<z.infer<typeof inferenceConfigSchema>>;
