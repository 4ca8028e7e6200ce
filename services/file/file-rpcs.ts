import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { HttpBodySchema } from "../../gen/google/api/httpbody_pb.ts";
import { requireIdentity } from "../../kit/auth/identity.ts";
import { createKeyset, findPage } from "../../kit/db/keyset.ts";
import { parseUuid } from "../../kit/uuid.ts";
import { StoredFile, type StoredFileRow, UploadSession } from "./entities.ts";
import { fileToProto, findOwnFile, thumbnailKeyOf } from "./files.ts";
import type { FileRpcs, RpcDeps } from "./rpc-deps.ts";
import { resizeThumbnail, thumbnailSizeFor } from "./thumbnail.ts";

// Most recently uploaded first, as ListFiles promises.
const newestFirst = createKeyset<StoredFileRow>({
  key: "createdAt",
  kind: "date",
  direction: "desc",
  tieBreaker: "id",
});

/** Listing, reading and deleting files, and their thumbnails. */
export function createFileRpcs({
  db,
  storage,
  pageTokens,
}: RpcDeps): FileRpcs<"listFiles" | "getFile" | "deleteFile" | "getThumbnail"> {
  return {
    async listFiles(req, ctx) {
      const caller = requireIdentity(ctx);
      const { rows, nextPageToken } = await findPage(
        db.fork(),
        StoredFile,
        { ownerId: caller.userId },
        req,
        { keyset: newestFirst, tokens: pageTokens, scope: `files:${caller.userId}` },
      );
      return { files: rows.map(fileToProto), nextPageToken };
    },

    async getFile(req, ctx) {
      return fileToProto(await findOwnFile(db.fork(), requireIdentity(ctx), req.id));
    },

    async deleteFile(req, ctx) {
      const caller = requireIdentity(ctx);
      const id = parseUuid(req.id, "id");
      // Gone already, or never the caller's: the same empty answer, and nothing deleted.
      const row = await db.fork().transactional(async (em) => {
        const file = await em.findOne(StoredFile, { id, ownerId: caller.userId });
        if (file === null) return null;
        em.remove(file);
        await em.nativeDelete(UploadSession, { fileId: id });
        return file;
      });
      if (row !== null) {
        await storage.delete(row.storageKey);
        // Whatever the row said: the thumbnailer may have stored it while the row was read.
        await storage.delete(thumbnailKeyOf(id));
      }
      return {};
    },

    async getThumbnail(req, ctx) {
      const file = await findOwnFile(db.fork(), requireIdentity(ctx), req.id);
      const key = file.thumbnailKey;
      if (file.thumbnailState !== "ready" || !key) {
        throw new ConnectError(
          `the thumbnail of file ${file.id} is not ready: its state is ${file.thumbnailState}`,
          Code.FailedPrecondition,
        );
      }
      const size = await storage.size(key);
      // Deleted with its file since the row was read.
      if (size === undefined) throw new ConnectError(`file ${file.id} not found`, Code.NotFound);
      const chunks: Uint8Array[] = [];
      for await (const chunk of storage.read(key, { offset: 0, length: size })) {
        chunks.push(chunk);
      }
      const png = await resizeThumbnail(Buffer.concat(chunks), thumbnailSizeFor(req.maxSize));
      return create(HttpBodySchema, { contentType: "image/png", data: png });
    },
  };
}
