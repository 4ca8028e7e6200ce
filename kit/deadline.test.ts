import { describe, expect, it } from "vitest";
import { applyDeadline, parseGrpcTimeout, restDeadline } from "./deadline.ts";

const policy = {
  defaultMs: 10_000,
  maxMs: 60_000,
  methodDefaults: new Map([["/pkg.Svc/Slow", 120_000]]),
};

describe("deadlines", () => {
  it("parses every gRPC timeout unit", () => {
    expect(parseGrpcTimeout("2H")).toBe(7_200_000);
    expect(parseGrpcTimeout("3M")).toBe(180_000);
    expect(parseGrpcTimeout("4S")).toBe(4_000);
    expect(parseGrpcTimeout("250m")).toBe(250);
    expect(parseGrpcTimeout("1500u")).toBe(1.5);
    expect(parseGrpcTimeout("123456789S")).toBeUndefined();
    expect(parseGrpcTimeout("5s")).toBeUndefined();
  });

  it("gives a call without a deadline the default, per protocol", () => {
    const grpc: Record<string, string> = { "content-type": "application/grpc" };
    applyDeadline(grpc, "/pkg.Svc/Fast", policy);
    expect(grpc["grpc-timeout"]).toBe("10000m");
    const connect: Record<string, string> = { "content-type": "application/json" };
    applyDeadline(connect, "/pkg.Svc/Fast", policy);
    expect(connect["connect-timeout-ms"]).toBe("10000");
  });

  it("uses the method's own default, even beyond the maximum, which it raises for the method", () => {
    const headers: Record<string, string> = { "content-type": "application/proto" };
    applyDeadline(headers, "/pkg.Svc/Slow", policy);
    expect(headers["connect-timeout-ms"]).toBe("120000");
    const longer: Record<string, string> = { "connect-timeout-ms": "500000" };
    applyDeadline(longer, "/pkg.Svc/Slow", policy);
    expect(longer["connect-timeout-ms"]).toBe("120000");
  });

  it("caps a longer requested deadline and keeps a shorter one", () => {
    const long: Record<string, string> = {
      "content-type": "application/grpc",
      "grpc-timeout": "5M",
    };
    applyDeadline(long, "/pkg.Svc/Fast", policy);
    expect(long["grpc-timeout"]).toBe("60000m");
    const short: Record<string, string> = { "connect-timeout-ms": "1500" };
    applyDeadline(short, "/pkg.Svc/Fast", policy);
    expect(short["connect-timeout-ms"]).toBe("1500");
  });
});

describe("REST deadlines (X-Timeout-Ms)", () => {
  const rest = {
    defaultMs: 10_000,
    maxMs: 60_000,
    methodDefaults: new Map([["/a.B/Slow", 90_000]]),
  };

  it("takes what the client asks for, up to the maximum", () => {
    expect(restDeadline(rest, "/a.B/C", "250")).toBe(250);
    expect(restDeadline(rest, "/a.B/C", "600000")).toBe(60_000);
  });

  it("uses the method's default when the client asks for nothing, and caps at it when longer", () => {
    expect(restDeadline(rest, "/a.B/C", undefined)).toBe(10_000);
    expect(restDeadline(rest, "/a.B/Slow", undefined)).toBe(90_000);
    expect(restDeadline(rest, "/a.B/Slow", "600000")).toBe(90_000);
    expect(restDeadline(rest, "/a.B/Slow", "70000")).toBe(70_000);
  });

  it("refuses a value that is not a positive number of milliseconds", () => {
    for (const bad of ["soon", "-5", "0", "1.5", ["1", "2"]]) {
      expect(restDeadline(rest, "/a.B/C", bad)).toBeUndefined();
    }
  });
});
