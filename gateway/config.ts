import { z } from "zod";
import { authConfigShape } from "../kit/auth/remote-verifier.ts";
import { resilienceConfigShape } from "../kit/balance/policy.ts";
import { flagSchema, serverConfigSchema } from "../kit/config.ts";
import { corsOriginsSchema } from "./admission/cors.ts";
import { rateLimitConfigShape } from "./admission/rate-limit.ts";

/** Base URLs of the instances of one service, comma-separated: at least one. */
export function urlListSchema(defaultUrl: string) {
  return z
    .string()
    .default(defaultUrl)
    .transform((text) => text.split(",").map((url) => url.trim()))
    .pipe(z.array(z.url()).min(1));
}

/**
 * The gateway's configuration: the shared server settings (port 8080), token verification,
 * where each upstream service answers, how large a REST request body may be, and which browser
 * origins may call it (CORS).
 */
export const gatewayConfigSchema = serverConfigSchema(8080).extend({
  ...authConfigShape,
  ...rateLimitConfigShape,
  ...resilienceConfigShape,
  // Every instance of the service, which also serve the keys tokens are checked with.
  USER_SERVICE_URL: urlListSchema("http://127.0.0.1:50051"),
  TASK_SERVICE_URL: urlListSchema("http://127.0.0.1:50052"),
  FILE_SERVICE_URL: urlListSchema("http://127.0.0.1:50053"),
  INFERENCE_SERVICE_URL: urlListSchema("http://127.0.0.1:50054"),
  MAX_BODY_BYTES: z.coerce
    .number()
    .int()
    .positive()
    .default(1024 * 1024),
  // Uploads stream through in constant memory; this bounds what one may carry.
  MAX_UPLOAD_BYTES: z.coerce
    .number()
    .int()
    .positive()
    .default(5 * 1024 * 1024 * 1024),
  // Empty: browsers get no cross-origin access at all.
  CORS_ORIGINS: corsOriginsSchema,
  CORS_ALLOW_CREDENTIALS: flagSchema.default(false),
});

/** The validated, frozen gateway configuration. */
export type GatewayConfig = Readonly<z.infer<typeof gatewayConfigSchema>>;
