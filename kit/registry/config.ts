import { hostname } from "node:os";
import { z } from "zod";

// Not kit/config.ts's millisSchema: that module spreads this shape, and an import cycle would
// leave one of the two undefined while the other evaluates.
const millis = z.coerce.number().int().positive();

/**
 * Service-discovery settings every server process reads. Only a set CONSUL_HTTP_ADDR makes
 * the process talk to Consul; without it the registry is static.
 */
export const registryConfigShape = {
  /** The Consul agent's HTTP API, `host:port` or a URL, as the consul CLI reads it. */
  CONSUL_HTTP_ADDR: z
    .string()
    .transform((text) => (/^[a-z][a-z0-9+.-]*:\/\//i.test(text) ? text : `http://${text}`))
    .pipe(z.url({ protocol: /^https?$/ }))
    .optional(),
  CONSUL_HTTP_TOKEN: z.string().optional(),
  /** The host the agent checks and clients dial; by default HOST (the machine's name if 0.0.0.0). */
  SERVICE_ADVERTISE_HOST: z.string().optional(),
  /** How Consul checks the process: GET /readyz, or grpc.health.v1.Health/Check. */
  REGISTRY_CHECK: z.enum(["http", "grpc"]).default("http"),
  REGISTRY_CHECK_INTERVAL_MS: millis.default(10_000),
  REGISTRY_CHECK_TIMEOUT_MS: millis.default(5_000),
  /** How long a check may stay critical before Consul removes the instance; at least 1 min. */
  REGISTRY_DEREGISTER_AFTER_MS: millis
    .min(60_000, "Consul removes critical services after 1 minute at the earliest")
    .default(60_000),
};

/** The discovery settings of a process, as registryConfigShape reads them. */
export type RegistryConfig = Readonly<z.infer<z.ZodObject<typeof registryConfigShape>>>;

/** The host Consul checks and clients dial: SERVICE_ADVERTISE_HOST, else HOST unless a wildcard. */
export function advertiseHost(config: RegistryConfig & { readonly HOST: string }): string {
  if (config.SERVICE_ADVERTISE_HOST !== undefined) return config.SERVICE_ADVERTISE_HOST;
  // Nobody can dial 0.0.0.0: in a container the machine's name is what the network resolves.
  const wildcard = config.HOST === "0.0.0.0" || config.HOST === "::" || config.HOST === "";
  return wildcard ? hostname() : config.HOST;
}
