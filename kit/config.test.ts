import { describe, expect, it } from "vitest";
import { z } from "zod";
import { ConfigError, flagSchema, loadConfig, serverConfigSchema } from "./config.ts";

describe("loadConfig", () => {
  const schema = serverConfigSchema(50051).extend({ STRICT: flagSchema.default(false) });

  it("applies defaults and coerces values", () => {
    const config = loadConfig(schema, { PORT: "6000", STRICT: "yes", LOG_LEVEL: "" });
    expect(config.PORT).toBe(6000);
    expect(config.STRICT).toBe(true);
    expect(config.LOG_LEVEL).toBe("info");
    expect(config.DEFAULT_DEADLINE_MS).toBe(10_000);
    expect(Object.isFrozen(config)).toBe(true);
  });

  it("names every bad variable and the value it got", () => {
    const load = () => loadConfig(schema, { PORT: "70000", DEFAULT_DEADLINE_MS: "soon" });
    expect(load).toThrow(ConfigError);
    expect(load).toThrow(/PORT: .*\(got "70000"\)/);
    expect(load).toThrow(/DEFAULT_DEADLINE_MS: .*\(got "soon"\)/);
  });

  it("bounds connections by default; 0 turns off the request timeout and no other limit", () => {
    const config = loadConfig(schema, { REQUEST_TIMEOUT_MS: "0" });
    expect(config.MAX_CONNECTIONS).toBe(1000);
    expect(config.HEADERS_TIMEOUT_MS).toBe(30_000);
    expect(config.REQUEST_TIMEOUT_MS).toBe(0);
    expect(() => loadConfig(schema, { MAX_CONNECTIONS: "0" })).toThrow(
      /MAX_CONNECTIONS: .*\(got "0"\)/,
    );
    expect(() => loadConfig(schema, { HEADERS_TIMEOUT_MS: "0" })).toThrow(/HEADERS_TIMEOUT_MS: /);
  });

  it("reads only the variables of its schema", () => {
    const config = loadConfig(z.object({ A: z.string().default("x") }), { A: "y", B: "z" });
    expect(config).toEqual({ A: "y" });
  });
});
