import type { z } from "zod";
import { authConfigShape } from "../../kit/auth/remote-verifier.ts";
import { serverConfigSchema } from "../../kit/config.ts";

/** Environment variables of the file service, validated at start. */
export const fileConfigSchema = serverConfigSchema(50053).extend(authConfigShape);

/** The file service's validated configuration. */
export type FileConfig = Readonly<z.infer<typeof fileConfigSchema>>;
