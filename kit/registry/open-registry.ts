import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Log } from "../log.ts";
import type { RegistryConfig } from "./config.ts";
import { createConsulRegistry } from "./consul.ts";
import type { Registry } from "./registry.ts";
import { createStaticRegistry, type StaticServices } from "./static.ts";

/**
 * Opens the registry a process's configuration asks for: Consul when CONSUL_HTTP_ADDR is set,
 * otherwise a static registry of `services` (full protobuf service name -> base URLs).
 */
export function openRegistry(
  config: RegistryConfig,
  log: Log,
  services: StaticServices = {},
): Registry {
  if (config.CONSUL_HTTP_ADDR === undefined) return createStaticRegistry(services);
  return createConsulRegistry({
    address: config.CONSUL_HTTP_ADDR,
    token: config.CONSUL_HTTP_TOKEN,
    log,
    check: config.REGISTRY_CHECK,
    checkIntervalMs: config.REGISTRY_CHECK_INTERVAL_MS,
    checkTimeoutMs: config.REGISTRY_CHECK_TIMEOUT_MS,
    deregisterAfterMs: config.REGISTRY_DEREGISTER_AFTER_MS,
    version: meshVersion(),
  });
}

let version: string | undefined;

/** The version in protomesh's package.json, announced in every registration's meta. */
export function meshVersion(): string {
  // Compiled or not, this file sits under the repository root, which holds package.json.
  version ??= readVersion(dirname(fileURLToPath(import.meta.url)));
  return version;
}

function readVersion(dir: string): string {
  try {
    const pkg = JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as {
      version?: unknown;
    };
    return typeof pkg.version === "string" ? pkg.version : "unknown";
  } catch {
    const parent = dirname(dir);
    return parent === dir ? "unknown" : readVersion(parent);
  }
}
