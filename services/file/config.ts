import { z } from "zod";
import { authConfigShape } from "../../kit/auth/remote-verifier.ts";
import { serverConfigSchema } from "../../kit/config.ts";
import { databaseConfigShape } from "../../kit/db/database.ts";
import { jobsConfigShape } from "../../kit/jobs/jobs.ts";
import { storageConfigShape } from "./storage/open-storage.ts";
import { defaultLimitInputPixels } from "./thumbnail.ts";

const bytes = z.coerce.number().int().positive();
const GiB = 1024 ** 3;

/** Environment variables of the file service, validated at start. */
export const fileConfigSchema = serverConfigSchema(50053).extend({
  ...authConfigShape,
  ...databaseConfigShape,
  ...jobsConfigShape,
  ...storageConfigShape,
  /** The largest file one upload may store. */
  FILE_MAX_BYTES: bytes.default(5 * GiB),
  /** The most bytes one user may hold: files, open upload sessions and uploads under way. */
  FILE_QUOTA_BYTES: bytes.default(20 * GiB),
  /** How long an upload session waits for its last byte before it is deleted. */
  FILE_UPLOAD_SESSION_TTL_S: z.coerce
    .number()
    .int()
    .positive()
    .default(24 * 3600),
  /** Images with more pixels than this get no thumbnail (their state is FAILED). */
  THUMBNAIL_MAX_INPUT_PIXELS: z.coerce.number().int().positive().default(defaultLimitInputPixels),
  /** Where users reach the mesh: signed download URLs point there. */
  PUBLIC_URL: z.url().default("http://127.0.0.1:8080"),
});

/** The file service's validated configuration. */
export type FileConfig = Readonly<z.infer<typeof fileConfigSchema>>;
