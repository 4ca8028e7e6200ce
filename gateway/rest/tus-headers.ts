import { Code, ConnectError } from "@connectrpc/connect";

/** The version of the tus resumable upload protocol the gateway speaks. */
export const tusVersion = "1.0.0";

/** The tus extensions the gateway serves, as Tus-Extension lists them. */
export const tusExtensions = "creation,termination,expiration";

/** The media type of a PATCH body (tus 1.0, core protocol). */
export const offsetOctetStream = "application/offset+octet-stream";

/** The tus header names, lower-case as node reads and writes them. */
export const tusHeader = {
  resumable: "tus-resumable",
  version: "tus-version",
  extension: "tus-extension",
  maxSize: "tus-max-size",
  uploadLength: "upload-length",
  uploadDeferLength: "upload-defer-length",
  uploadOffset: "upload-offset",
  uploadMetadata: "upload-metadata",
  uploadExpires: "upload-expires",
} as const;

/** What Upload-Metadata says about a file, in the terms of the file service. */
export interface TusFileMetadata {
  readonly filename: string;
  readonly contentType: string;
}

// A key is ASCII without spaces or commas; a value is Base64 (RFC 4648 §4, with padding).
const keyPattern = /^[\x21-\x2b\x2d-\x7e]+$/;
const base64Pattern = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/**
 * Parses Upload-Metadata: comma-separated pairs of a key and, after a space, its value in
 * Base64 (tus 1.0, creation extension). A key without a value maps to "". InvalidArgument for
 * a malformed pair, a value that is no Base64 or a key given twice.
 */
export function parseUploadMetadata(value: string | undefined): Map<string, string> {
  const pairs = new Map<string, string>();
  if (value === undefined || value.trim() === "") return pairs;
  for (const pair of value.split(",")) {
    const [key = "", encoded = "", ...rest] = pair.trim().split(" ");
    if (!keyPattern.test(key) || rest.length > 0) {
      throw invalid(`${tusHeader.uploadMetadata}: "${pair.trim()}" is not "key base64-value"`);
    }
    if (!base64Pattern.test(encoded)) {
      throw invalid(`${tusHeader.uploadMetadata}: the value of "${key}" is not Base64`);
    }
    if (pairs.has(key)) throw invalid(`${tusHeader.uploadMetadata}: "${key}" is given twice`);
    pairs.set(key, Buffer.from(encoded, "base64").toString("utf8"));
  }
  return pairs;
}

/** Writes Upload-Metadata from pairs whose values are not empty. */
export function formatUploadMetadata(pairs: Readonly<Record<string, string>>): string {
  return Object.entries(pairs)
    .filter(([, value]) => value !== "")
    .map(([key, value]) => `${key} ${Buffer.from(value, "utf8").toString("base64")}`)
    .join(",");
}

/**
 * The file's name and media type from parsed Upload-Metadata: `filename` and `filetype`, or
 * `name` and `type` as Uppy sends them.
 */
export function fileMetadataOf(pairs: ReadonlyMap<string, string>): TusFileMetadata {
  return {
    filename: pairs.get("filename") ?? pairs.get("name") ?? "",
    contentType: pairs.get("filetype") ?? pairs.get("type") ?? "",
  };
}

/**
 * Reads a header that holds a number of bytes (Upload-Length, Upload-Offset): a non-negative
 * integer. InvalidArgument when it is missing or anything else.
 */
export function parseByteCount(name: string, value: string | string[] | undefined): number {
  if (value === undefined) throw invalid(`the ${name} header is required`);
  const count = typeof value === "string" && /^\d{1,16}$/.test(value) ? Number(value) : Number.NaN;
  if (!Number.isSafeInteger(count)) {
    throw invalid(`${name} must be a non-negative integer number of bytes (got "${value}")`);
  }
  return count;
}

function invalid(message: string): ConnectError {
  return new ConnectError(message, Code.InvalidArgument);
}
