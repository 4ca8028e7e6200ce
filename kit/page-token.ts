import { createHmac, timingSafeEqual } from "node:crypto";
import { Code, ConnectError } from "@connectrpc/connect";

/** Signs and opens opaque page tokens: a cursor that clients can hold but cannot forge. */
export interface PageTokens {
  /** Encodes a cursor for the given list (the scope binds it to one query). */
  seal(scope: string, cursor: readonly (string | number)[]): string;
  /** Decodes a token for the given list; a forged, altered or foreign one is InvalidArgument. */
  open(scope: string, token: string): (string | number)[];
}

/**
 * Creates HMAC-SHA256 page tokens with the given secret. A token is base64url(JSON) plus a
 * truncated MAC over the scope and the JSON, so it cannot be edited or replayed on another list.
 */
export function createPageTokens(secret: Uint8Array): PageTokens {
  const mac = (scope: string, body: string) =>
    createHmac("sha256", secret)
      .update(scope)
      .update("\u0000")
      .update(body)
      .digest()
      .subarray(0, 16);
  const invalid = () =>
    new ConnectError(
      "invalid page_token: pass the next_page_token of the previous page",
      Code.InvalidArgument,
    );
  return {
    seal(scope, cursor) {
      const body = Buffer.from(JSON.stringify(cursor)).toString("base64url");
      return `${body}.${mac(scope, body).toString("base64url")}`;
    },
    open(scope, token) {
      const [body, signature, extra] = token.split(".");
      if (!body || !signature || extra !== undefined) throw invalid();
      const given = Buffer.from(signature, "base64url");
      const expected = mac(scope, body);
      if (given.length !== expected.length || !timingSafeEqual(given, expected)) throw invalid();
      const cursor: unknown = JSON.parse(Buffer.from(body, "base64url").toString());
      if (
        !Array.isArray(cursor) ||
        !cursor.every((v) => typeof v === "string" || typeof v === "number")
      ) {
        throw invalid();
      }
      return cursor;
    },
  };
}

/** The page size to use: the default when 0, at most `max` (larger requests are clamped). */
export function pageSizeOf(
  requested: number,
  defaults: { readonly size: number; readonly max: number },
): number {
  if (requested < 0) throw new ConnectError("page_size must not be negative", Code.InvalidArgument);
  return requested === 0 ? defaults.size : Math.min(requested, defaults.max);
}
