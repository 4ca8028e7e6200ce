import { join } from "node:path";
import { z } from "zod";
import { ConfigError, flagSchema } from "../../../kit/config.ts";
import type { DatabaseConfig } from "../../../kit/db/database.ts";
import { createLocalStorage } from "./local-storage.ts";
import { createS3Storage, minPartSize } from "./s3-storage.ts";
import type { FileStorage } from "./storage.ts";

/**
 * Where the file service keeps content, read from the environment:
 *
 * | variable                    | default     | meaning                                          |
 * |-----------------------------|-------------|--------------------------------------------------|
 * | `FILE_STORAGE`              | `local`     | `local`: under `DATA_DIR/files`; `s3`: a bucket  |
 * | `FILE_S3_BUCKET`            | (none)      | the bucket; required when `FILE_STORAGE` is `s3` |
 * | `FILE_S3_ENDPOINT`          | AWS's       | an S3-compatible server's URL (MinIO, ...)       |
 * | `FILE_S3_REGION`            | `us-east-1` | the bucket's region                              |
 * | `FILE_S3_FORCE_PATH_STYLE`  | `false`     | bucket in the path, not the host (MinIO)         |
 * | `FILE_S3_ACCESS_KEY_ID`     | (none)      | unset: the SDK's default credential chain        |
 * | `FILE_S3_SECRET_ACCESS_KEY` | (none)      | the secret of that access key                    |
 * | `FILE_S3_PART_SIZE_BYTES`   | 8388608     | multipart part size (8 MiB), at least 5 MiB      |
 */
export const storageConfigShape = {
  FILE_STORAGE: z.enum(["local", "s3"]).default("local"),
  FILE_S3_BUCKET: z.string().min(1).optional(),
  FILE_S3_ENDPOINT: z.url({ protocol: /^https?$/ }).optional(),
  FILE_S3_REGION: z.string().min(1).default("us-east-1"),
  FILE_S3_FORCE_PATH_STYLE: flagSchema.default(false),
  FILE_S3_ACCESS_KEY_ID: z.string().min(1).optional(),
  FILE_S3_SECRET_ACCESS_KEY: z.string().min(1).optional(),
  FILE_S3_PART_SIZE_BYTES: z.coerce
    .number()
    .int()
    .min(minPartSize, `must be at least ${minPartSize} (5 MiB), S3's smallest part`)
    .default(8 * 1024 * 1024),
};

/** The storage settings of the file service, as storageConfigShape reads them. */
export type StorageConfig = Readonly<z.infer<z.ZodObject<typeof storageConfigShape>>>;

/**
 * Opens the store the configuration chooses: a directory under DATA_DIR, or an S3 bucket.
 * Settings that only make sense together (an S3 store without its bucket, an access key
 * without its secret) fail here with a ConfigError naming the variable.
 */
export async function openStorage(
  config: StorageConfig & Pick<DatabaseConfig, "DATA_DIR">,
): Promise<FileStorage> {
  if (config.FILE_STORAGE === "local") {
    return createLocalStorage({ root: join(config.DATA_DIR, "files") });
  }
  return createS3Storage({
    bucket: required(config.FILE_S3_BUCKET, "FILE_S3_BUCKET", "when FILE_STORAGE is s3"),
    endpoint: config.FILE_S3_ENDPOINT,
    region: config.FILE_S3_REGION,
    forcePathStyle: config.FILE_S3_FORCE_PATH_STYLE,
    credentials: s3Credentials(config),
    partSize: config.FILE_S3_PART_SIZE_BYTES,
  });
}

/** Static credentials when both halves are set, none when neither is. */
function s3Credentials(config: StorageConfig) {
  const { FILE_S3_ACCESS_KEY_ID: accessKeyId, FILE_S3_SECRET_ACCESS_KEY: secret } = config;
  if (accessKeyId === undefined && secret === undefined) return undefined;
  return {
    accessKeyId: required(accessKeyId, "FILE_S3_ACCESS_KEY_ID", "with FILE_S3_SECRET_ACCESS_KEY"),
    secretAccessKey: required(secret, "FILE_S3_SECRET_ACCESS_KEY", "with FILE_S3_ACCESS_KEY_ID"),
  };
}

/** `value`, or a ConfigError in loadConfig's words naming `variable`. */
function required(value: string | undefined, variable: string, when: string): string {
  if (value === undefined) {
    throw new ConfigError(`invalid configuration:\n  ${variable}: required ${when}`);
  }
  return value;
}
