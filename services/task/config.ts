import { z } from "zod";
import { authConfigShape } from "../../kit/auth/remote-verifier.ts";
import { resilienceConfigShape } from "../../kit/balance/policy.ts";
import { millisSchema, serverConfigSchema } from "../../kit/config.ts";
import { databaseConfigShape } from "../../kit/db/database.ts";

/** Environment variables of the task service, validated at start. */
export const taskConfigSchema = serverConfigSchema(50052).extend({
  ...authConfigShape,
  ...databaseConfigShape,
  /** The file service's instances when discovery is static (no CONSUL_HTTP_ADDR). */
  FILE_SERVICE_URL: z.url().default("http://127.0.0.1:50053"),
  // Calls to the user and file services: balancing, breaker and retries, like the gateway's.
  ...resilienceConfigShape,
  /** How long the answer to "does this user exist?" is remembered. */
  USER_LOOKUP_CACHE_MS: millisSchema.default(30_000),
});

/** The task service's validated configuration. */
export type TaskConfig = Readonly<z.infer<typeof taskConfigSchema>>;
