import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import { type HttpBody, HttpBodySchema } from "../../gen/google/api/httpbody_pb.ts";
import { requireIdentity } from "../../kit/auth/identity.ts";
import { parseUuid } from "../../kit/uuid.ts";
import { contentDispositionOf } from "./content-disposition.ts";
import { StoredFile, type StoredFileRow } from "./entities.ts";
import { findOwnFile } from "./files.ts";
import type { FileRpcs, RpcDeps } from "./rpc-deps.ts";
import type { ByteRange, FileStorage } from "./storage/storage.ts";

const defaultUrlTtlS = 900;
const maxUrlTtlS = 7 * 24 * 3600;

/**
 * The bytes a request asks for: from `offset` (negative: that many from the end) for `length`
 * bytes (0: to the end). An offset at or beyond the end is OutOfRange, except for the whole of
 * an empty file.
 */
export function rangeOf(sizeBytes: number, offset: bigint, length: bigint): ByteRange {
  if (length < 0n) throw new ConnectError("length must not be negative", Code.InvalidArgument);
  const start = offset < 0n ? Math.max(0, sizeBytes + Number(offset)) : Number(offset);
  // The whole of an empty file, asked from its start or as its last bytes, is nothing.
  if (sizeBytes === 0 && offset <= 0n) return { offset: 0, length: 0 };
  if (start >= sizeBytes) {
    throw new ConnectError(
      `the range starts beyond the file's ${sizeBytes} bytes`,
      Code.OutOfRange,
      { "content-range": `bytes */${sizeBytes}` },
    );
  }
  const end = length === 0n ? sizeBytes : Math.min(sizeBytes, start + Number(length));
  return { offset: start, length: end - start };
}

/**
 * Streams a range of a file's content, the first message with its content type, after setting
 * the response headers that describe it (see Download in the contract).
 */
async function* contentOf(
  storage: FileStorage,
  file: StoredFileRow,
  range: ByteRange,
  ctx: HandlerContext,
): AsyncGenerator<HttpBody> {
  const { offset, length } = range;
  const headers = ctx.responseHeader;
  headers.set(
    "content-range",
    length === 0
      ? `bytes */${file.sizeBytes}`
      : `bytes ${offset}-${offset + length - 1}/${file.sizeBytes}`,
  );
  headers.set("etag", `"${file.sha256}"`);
  headers.set("last-modified", file.createdAt.toUTCString());
  headers.set("content-disposition", contentDispositionOf(file.filename, file.contentType));
  headers.set("x-content-type-options", "nosniff");
  let first = true;
  for await (const data of storage.read(file.storageKey, range, ctx.signal)) {
    yield create(HttpBodySchema, { contentType: first ? file.contentType : "", data });
    first = false;
  }
  if (first) yield create(HttpBodySchema, { contentType: file.contentType });
}

/** Downloading files, with a token or with a signed URL. */
export function createDownloadRpcs({
  db,
  storage,
  downloadUrls,
  config,
}: RpcDeps): FileRpcs<"download" | "downloadSigned" | "createDownloadUrl"> {
  return {
    async *download(req, ctx) {
      const file = await findOwnFile(db.fork(), requireIdentity(ctx), req.id);
      yield* contentOf(storage, file, rangeOf(file.sizeBytes, req.offset, req.length), ctx);
    },

    async *downloadSigned(req, ctx) {
      const id = parseUuid(req.id, "id");
      downloadUrls.check(id, Number(req.expires), req.signature, Date.now());
      const file = await db.fork().findOne(StoredFile, { id });
      if (file === null) throw new ConnectError(`file ${id} not found`, Code.NotFound);
      yield* contentOf(storage, file, rangeOf(file.sizeBytes, req.offset, req.length), ctx);
    },

    async createDownloadUrl(req, ctx) {
      const file = await findOwnFile(db.fork(), requireIdentity(ctx), req.id);
      if (req.expiresInSeconds < 0) {
        throw new ConnectError("expires_in_seconds must not be negative", Code.InvalidArgument);
      }
      const ttlS = Math.min(req.expiresInSeconds || defaultUrlTtlS, maxUrlTtlS);
      const expiresAtMs = Date.now() + ttlS * 1000;
      const expires = Math.ceil(expiresAtMs / 1000);
      const expireTime = timestampFromMs(expiresAtMs);
      const presigned = await storage.presignedUrl(file.storageKey, {
        expiresAt: new Date(expiresAtMs),
        contentDisposition: contentDispositionOf(file.filename, file.contentType),
        contentType: file.contentType,
      });
      if (presigned !== undefined) return { url: presigned, expireTime };
      const url = new URL(`/v1/signed-files/${file.id}`, config.PUBLIC_URL);
      url.searchParams.set("expires", String(expires));
      url.searchParams.set("signature", downloadUrls.sign(file.id, expires));
      return { url: url.toString(), expireTime };
    },
  };
}
