import { createHmac, timingSafeEqual } from "node:crypto";
import { Code, ConnectError } from "@connectrpc/connect";

/** Signs and checks the gateway URLs that download a file without a token. */
export interface DownloadUrls {
  /** The query of a URL for `fileId` valid until `expires` (seconds since the epoch). */
  sign(fileId: string, expires: number): string;
  /** Throws PermissionDenied unless the signature is this service's and has not expired. */
  check(fileId: string, expires: number, signature: string, nowMs: number): void;
}

/** Creates HMAC-SHA256 download URL signatures with the service's secret. */
export function createDownloadUrls(secret: Uint8Array): DownloadUrls {
  const mac = (fileId: string, expires: number) =>
    createHmac("sha256", secret).update(`download\u0000${fileId}\u0000${expires}`).digest();
  return {
    sign: (fileId, expires) => mac(fileId, expires).toString("base64url"),
    check(fileId, expires, signature, nowMs) {
      const given = Buffer.from(signature, "base64url");
      const expected = mac(fileId, expires);
      if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
        throw new ConnectError("the download URL's signature is not valid", Code.PermissionDenied);
      }
      if (expires * 1000 <= nowMs) {
        throw new ConnectError("the download URL has expired", Code.PermissionDenied);
      }
    },
  };
}
