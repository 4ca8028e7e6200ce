import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import type { EntityManager } from "@mikro-orm/core";
import { FileUploadedSchema } from "../../gen/protomesh/file/v1/events_pb.ts";
import { type File, FileSchema, ThumbnailState } from "../../gen/protomesh/file/v1/file_pb.ts";
import type { Identity } from "../../kit/auth/identity.ts";
import type { Jobs } from "../../kit/jobs/jobs.ts";
import { parseUuid } from "../../kit/uuid.ts";
import { StoredFile, type StoredFileRow, type thumbnailStates } from "./entities.ts";
import { hasThumbnail } from "./thumbnail.ts";

/** Where the thumbnail of a file is stored, once rendered. */
export function thumbnailKeyOf(fileId: string): string {
  return `thumbs/${fileId}`;
}

/** The streams the file service publishes its events to, one per event type. */
export const fileStreams = { uploaded: "file.uploaded" } as const;

const states: Record<(typeof thumbnailStates)[number], ThumbnailState> = {
  pending: ThumbnailState.PENDING,
  ready: ThumbnailState.READY,
  unsupported: ThumbnailState.UNSUPPORTED,
  failed: ThumbnailState.FAILED,
};

/** The contract's view of a stored file. */
export function fileToProto(row: StoredFileRow): File {
  return create(FileSchema, {
    id: row.id,
    ownerId: row.ownerId,
    filename: row.filename,
    contentType: row.contentType,
    sizeBytes: BigInt(row.sizeBytes),
    sha256: row.sha256,
    thumbnailState: states[row.thumbnailState],
    createTime: timestampFromDate(row.createdAt),
  });
}

/**
 * One of the caller's files. Another user's file is NotFound with the same message as an unknown
 * id, so that ids cannot be probed.
 */
export async function findOwnFile(
  em: EntityManager,
  caller: Identity,
  id: string,
  field = "id",
): Promise<StoredFileRow> {
  const fileId = parseUuid(id, field);
  const row = await em.findOne(StoredFile, { id: fileId, ownerId: caller.userId });
  if (row === null) throw new ConnectError(`file ${fileId} not found`, Code.NotFound);
  return row;
}

/** What a complete upload is recorded with. */
export interface NewFile {
  readonly id: string;
  readonly ownerId: string;
  readonly filename: string;
  readonly contentType: string;
  readonly sizeBytes: number;
  readonly sha256: string;
  readonly storageKey: string;
}

/**
 * Records a stored file and publishes FileUploaded in the same transaction, so that the
 * thumbnailer hears of every file that exists and of no other.
 */
export function recordFile(
  em: EntityManager,
  jobs: Jobs,
  file: NewFile,
  traceparent: string | undefined,
): StoredFileRow {
  const row: StoredFileRow = {
    ...file,
    thumbnailState: hasThumbnail(file.contentType) ? "pending" : "unsupported",
    thumbnailKey: null,
    createdAt: new Date(),
  };
  em.create(StoredFile, row);
  jobs.publish(
    em,
    fileStreams.uploaded,
    FileUploadedSchema,
    create(FileUploadedSchema, {
      fileId: row.id,
      ownerId: row.ownerId,
      contentType: row.contentType,
      sizeBytes: BigInt(row.sizeBytes),
    }),
    traceparent,
  );
  return row;
}
