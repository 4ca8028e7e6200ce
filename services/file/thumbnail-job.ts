import { FileUploadedSchema } from "../../gen/protomesh/file/v1/events_pb.ts";
import type { Database } from "../../kit/db/database.ts";
import type { Jobs } from "../../kit/jobs/jobs.ts";
import { StoredFile } from "./entities.ts";
import { fileStreams, thumbnailKeyOf } from "./files.ts";
import type { FileStorage } from "./storage/storage.ts";
import { maxThumbnailSize, renderThumbnail } from "./thumbnail.ts";

/** What rendering came to, before the file's state records it. */
type Rendered =
  | { readonly kind: "gone" }
  | { readonly kind: "ready"; readonly key: string }
  | { readonly kind: "failed"; readonly reason: string };

/** Options of the thumbnailer. */
export interface ThumbnailerOptions {
  readonly db: Database;
  readonly storage: FileStorage;
  /** Images with more pixels than this fail instead of being decoded. */
  readonly limitInputPixels: number;
}

/**
 * Renders the thumbnail of every uploaded image (consumer group "thumbnails"): at most
 * maxThumbnailSize pixels a side, kept under "thumbs/<file id>", from which GetThumbnail
 * serves every smaller size. The rendering happens before the event's transaction, which then
 * records READY or FAILED; a file deleted meanwhile leaves no thumbnail behind.
 */
export function consumeThumbnails(jobs: Jobs, options: ThumbnailerOptions): void {
  const { db, storage, limitInputPixels } = options;
  jobs.consume<typeof FileUploadedSchema, Rendered>({
    stream: fileStreams.uploaded,
    group: "thumbnails",
    schema: FileUploadedSchema,
    async prepare(event) {
      const file = await db.fork().findOne(StoredFile, { id: event.fileId });
      if (file === null || file.thumbnailState !== "pending") return { kind: "gone" };
      const content = storage.read(file.storageKey, { offset: 0, length: file.sizeBytes });
      const result = await renderThumbnail(content, {
        maxSize: maxThumbnailSize,
        limitInputPixels,
      });
      if (result.kind === "failed") return result;
      const key = thumbnailKeyOf(file.id);
      const write = await storage.create(key);
      try {
        await write.write(result.png);
        await write.commit();
      } catch (err) {
        await write.abort();
        throw err;
      }
      return { kind: "ready", key };
    },
    async handle(event, { em, prepared, log }) {
      if (prepared.kind === "gone") return;
      const state = prepared.kind === "ready" ? "ready" : "failed";
      const thumbnailKey = prepared.kind === "ready" ? prepared.key : null;
      const updated = await em.nativeUpdate(
        StoredFile,
        { id: event.fileId, thumbnailState: "pending" },
        { thumbnailState: state, thumbnailKey },
      );
      if (prepared.kind === "failed") {
        log.info({ fileId: event.fileId, reason: prepared.reason }, "no thumbnail");
      }
      // Deleted while it rendered: its thumbnail goes too (a redelivery finds the file done).
      if (updated === 0 && thumbnailKey !== null) {
        if ((await em.count(StoredFile, { id: event.fileId })) === 0) {
          await storage.delete(thumbnailKey);
        }
      }
    },
  });
}
