import { z } from "zod";
import { registryConfigShape } from "./registry/config.ts";

/** Thrown when the environment does not satisfy a process's configuration schema. */
export class ConfigError extends Error {
  override readonly name = "ConfigError";
}

/**
 * Reads and validates a process's configuration from environment variables, once, at start.
 * The schema's keys are the variable names; the result is frozen.
 */
export function loadConfig<S extends z.ZodObject>(
  schema: S,
  env: NodeJS.ProcessEnv = process.env,
): Readonly<z.infer<S>> {
  const input: Record<string, string> = {};
  for (const key of Object.keys(schema.shape)) {
    const value = env[key];
    // An empty variable means "use the default", as in most shells' `FOO= cmd`.
    if (value !== undefined && value !== "") input[key] = value;
  }
  const result = schema.safeParse(input);
  if (!result.success) {
    const problems = result.error.issues.map((issue) => {
      const variable = issue.path.join(".") || "(environment)";
      const given = typeof issue.path[0] === "string" ? input[issue.path[0]] : undefined;
      const shown = given === undefined ? "" : ` (got ${JSON.stringify(given)})`;
      return `${variable}: ${issue.message}${shown}`;
    });
    throw new ConfigError(`invalid configuration:\n  ${problems.join("\n  ")}`);
  }
  return Object.freeze(result.data);
}

/**
 * loadConfig for a command's entry point: on a bad value it prints the problems (and `hint`,
 * such as a usage text) prefixed with the command's name, and exits with code 2.
 */
export function loadConfigOrExit<S extends z.ZodObject>(
  name: string,
  schema: S,
  hint?: string,
): Readonly<z.infer<S>> {
  try {
    return loadConfig(schema);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`${name}: ${err.message}\n${hint ? `\n${hint}\n` : ""}`);
    process.exit(2);
  }
}

/** A TCP port number from an environment variable; 0 asks the OS for a free one. */
export const portSchema = z.coerce.number().int().min(0).max(65535);

/** A duration in milliseconds from an environment variable. */
export const millisSchema = z.coerce.number().int().positive();

/** A boolean from an environment variable: true/false, 1/0, yes/no. */
export const flagSchema = z
  .enum(["true", "false", "1", "0", "yes", "no"])
  .transform((value) => value === "true" || value === "1" || value === "yes");

/** Settings every protomesh server process shares, with their defaults. */
const serverConfigShape = {
  HOST: z.string().default("127.0.0.1"),
  LOG_LEVEL: z.enum(["trace", "debug", "info", "warn", "error", "fatal", "silent"]).default("info"),
  LOG_FORMAT: z.enum(["json", "pretty"]).optional(),
  DEFAULT_DEADLINE_MS: millisSchema.default(10_000),
  MAX_DEADLINE_MS: millisSchema.default(300_000),
  SHUTDOWN_GRACE_MS: millisSchema.default(10_000),
  MAX_MESSAGE_BYTES: z.coerce
    .number()
    .int()
    .positive()
    .default(4 * 1024 * 1024),
  // Bounds on the listener's connections (kit/connection-limits.ts); 0 turns the request
  // timeout off, for long uploads over HTTP/1.1.
  MAX_CONNECTIONS: z.coerce.number().int().positive().default(1000),
  FIRST_BYTES_TIMEOUT_MS: millisSchema.default(10_000),
  HEADERS_TIMEOUT_MS: millisSchema.default(30_000),
  REQUEST_TIMEOUT_MS: z.coerce.number().int().min(0).default(300_000),
  HTTP2_SETTINGS_TIMEOUT_MS: millisSchema.default(10_000),
  HTTP2_IDLE_TIMEOUT_MS: millisSchema.default(120_000),
  // Service discovery: static unless CONSUL_HTTP_ADDR is set (kit/registry).
  ...registryConfigShape,
};

/** Configuration every server process has: the shared settings and its port. */
export type ServerConfig = Readonly<
  z.infer<z.ZodObject<typeof serverConfigShape>> & { readonly PORT: number }
>;

/** The schema of the shared server settings, with the process's own default port. */
export function serverConfigSchema(defaultPort: number) {
  return z.object({ ...serverConfigShape, PORT: portSchema.default(defaultPort) });
}
