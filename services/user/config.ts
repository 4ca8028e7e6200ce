import type { z } from "zod";
import { serverConfigSchema } from "../../kit/config.ts";

/** Environment variables of the user service, validated at start. */
export const userConfigSchema = serverConfigSchema(50051);

/** The user service's validated configuration. */
export type UserConfig = Readonly<z.infer<typeof userConfigSchema>>;
