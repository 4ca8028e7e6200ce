import { hostname } from "node:os";
import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig, serverConfigSchema } from "../config.ts";
import { createLogger } from "../log.ts";
import { advertiseHost } from "./config.ts";
import { openRegistry } from "./open-registry.ts";

const schema = serverConfigSchema(0);
const log = createLogger({ name: "registry-config-test", level: "silent" });

describe("service-discovery configuration", () => {
  it("is static by default, with an HTTP check every 10 s and removal after 1 min critical", () => {
    expect(loadConfig(schema, {})).toMatchObject({
      REGISTRY_CHECK: "http",
      REGISTRY_CHECK_INTERVAL_MS: 10_000,
      REGISTRY_CHECK_TIMEOUT_MS: 5_000,
      REGISTRY_DEREGISTER_AFTER_MS: 60_000,
    });
    expect(loadConfig(schema, {}).CONSUL_HTTP_ADDR).toBeUndefined();
  });

  it("reads CONSUL_HTTP_ADDR as the consul CLI does: host:port or a URL", () => {
    const addressOf = (value: string) =>
      loadConfig(schema, { CONSUL_HTTP_ADDR: value }).CONSUL_HTTP_ADDR;
    expect(addressOf("127.0.0.1:8500")).toBe("http://127.0.0.1:8500");
    expect(addressOf("https://consul.internal:8501")).toBe("https://consul.internal:8501");
    expect(() => addressOf("unix:///var/run/consul.sock")).toThrow(ConfigError);
    expect(() => addressOf("unix:///var/run/consul.sock")).toThrow(/CONSUL_HTTP_ADDR/);
  });

  it("refuses a removal delay below Consul's minimum of one minute, naming the variable", () => {
    expect(() => loadConfig(schema, { REGISTRY_DEREGISTER_AFTER_MS: "30000" })).toThrow(
      /REGISTRY_DEREGISTER_AFTER_MS: .*1 minute/,
    );
    expect(() => loadConfig(schema, { REGISTRY_CHECK: "tcp" })).toThrow(/REGISTRY_CHECK/);
  });

  it("advertises SERVICE_ADVERTISE_HOST, else HOST, else the machine's name for a wildcard HOST", () => {
    const hostOf = (env: Record<string, string>) => advertiseHost(loadConfig(schema, env));
    expect(hostOf({})).toBe("127.0.0.1");
    expect(hostOf({ HOST: "10.0.0.5" })).toBe("10.0.0.5");
    expect(hostOf({ HOST: "0.0.0.0" })).toBe(hostname());
    expect(hostOf({ HOST: "0.0.0.0", SERVICE_ADVERTISE_HOST: "user" })).toBe("user");
  });

  it("opens the static registry of the given URLs when CONSUL_HTTP_ADDR is unset", () => {
    const registry = openRegistry(loadConfig(schema, {}), log, {
      "protomesh.user.v1.UserService": ["http://127.0.0.1:50051"],
    });
    expect(registry.current("protomesh.user.v1.UserService").map((i) => i.address)).toEqual([
      "http://127.0.0.1:50051",
    ]);
    registry.close();
  });
});
