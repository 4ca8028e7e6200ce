import type { z } from "zod";
import { serverConfigSchema } from "../../kit/config.ts";

/** Environment variables of the file service, validated at start. */
export const fileConfigSchema = serverConfigSchema(50053);

/** The file service's validated configuration. */
export type FileConfig = Readonly<z.infer<typeof fileConfigSchema>>;
