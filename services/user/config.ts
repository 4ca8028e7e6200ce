import { z } from "zod";
import { revocationConfigShape } from "../../kit/auth/revocations.ts";
import { flagSchema, serverConfigSchema } from "../../kit/config.ts";
import { databaseConfigShape } from "../../kit/db/database.ts";
import { jobsConfigShape } from "../../kit/jobs/jobs.ts";
import { mailConfigShape } from "../../kit/mail/mailer.ts";

const seconds = z.coerce.number().int().positive();

/** Environment variables of the user service, validated at start. */
export const userConfigSchema = serverConfigSchema(50051).extend({
  ...databaseConfigShape,
  ...jobsConfigShape,
  ...mailConfigShape,
  ...revocationConfigShape,
  /** The account registered with this email becomes an admin. */
  ADMIN_EMAIL: z.email().optional(),
  JWT_ISSUER: z.string().default("protomesh"),
  JWT_AUDIENCE: z.string().default("protomesh"),
  ACCESS_TOKEN_TTL_S: seconds.default(900),
  REFRESH_TOKEN_TTL_S: seconds.default(30 * 24 * 3600),
  VERIFICATION_TOKEN_TTL_S: seconds.default(24 * 3600),
  LOGIN_MAX_FAILURES: z.coerce.number().int().positive().default(5),
  LOGIN_LOCK_S: seconds.default(900),
  /** Login refuses an account whose email is not verified yet (FailedPrecondition). */
  LOGIN_REQUIRE_VERIFIED_EMAIL: flagSchema.default(true),
  /** Where users reach the mesh; the verification mail links there. */
  PUBLIC_URL: z.url().default("http://127.0.0.1:8080"),
});

/** The user service's validated configuration. */
export type UserConfig = Readonly<z.infer<typeof userConfigSchema>>;
