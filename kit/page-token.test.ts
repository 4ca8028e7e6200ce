import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { createPageTokens, pageSizeOf } from "./page-token.ts";

const tokens = createPageTokens(new TextEncoder().encode("a secret of thirty-two bytes!!!!"));

function codeOf(fn: () => unknown): Code | undefined {
  try {
    fn();
  } catch (err) {
    return ConnectError.from(err).code;
  }
  return undefined;
}

describe("page tokens", () => {
  it("round-trips a cursor for the same list", () => {
    const token = tokens.seal("users", ["2026-11-26T05:00:00.000Z", "c0ffee"]);
    expect(tokens.open("users", token)).toEqual(["2026-11-26T05:00:00.000Z", "c0ffee"]);
  });

  it("rejects an edited, truncated, foreign or made-up token with InvalidArgument", () => {
    const token = tokens.seal("users", ["2026-11-26T05:00:00.000Z", "c0ffee"]);
    const [body, mac] = token.split(".") as [string, string];
    const edited = `${Buffer.from(JSON.stringify(["2020-01-01T00:00:00.000Z", "c0ffee"])).toString("base64url")}.${mac}`;
    expect(codeOf(() => tokens.open("users", edited))).toBe(Code.InvalidArgument);
    expect(codeOf(() => tokens.open("users", body))).toBe(Code.InvalidArgument);
    expect(codeOf(() => tokens.open("projects", token))).toBe(Code.InvalidArgument);
    expect(codeOf(() => tokens.open("users", "not-a-token"))).toBe(Code.InvalidArgument);
    const other = createPageTokens(new TextEncoder().encode("another secret entirely, 32 byte"));
    expect(codeOf(() => other.open("users", token))).toBe(Code.InvalidArgument);
  });

  it("clamps page sizes and applies the default", () => {
    const defaults = { size: 50, max: 200 };
    expect(pageSizeOf(0, defaults)).toBe(50);
    expect(pageSizeOf(10, defaults)).toBe(10);
    expect(pageSizeOf(5000, defaults)).toBe(200);
    expect(codeOf(() => pageSizeOf(-1, defaults))).toBe(Code.InvalidArgument);
  });
});
