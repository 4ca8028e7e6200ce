import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import { failedOnBehalf, type OnBehalfOptions, onBehalfOf } from "./on-behalf.ts";

/** The one file-service call attaching makes (the generated client's GetFile). */
export interface FileLookup {
  getFile(
    request: { id: string },
    options: OnBehalfOptions,
  ): Promise<{ filename: string; sizeBytes: bigint; contentType: string }>;
}

/** A file attached to a task: its id, and its metadata as it was when attached. */
export interface StoredAttachment {
  readonly fileId: string;
  readonly filename: string;
  readonly sizeBytes: number;
  readonly contentType: string;
}

/**
 * The attachments a task will have once its list is `fileIds` (checked ids, in order): the
 * files it already carries (`current`) keep their metadata, and every other one is asked of
 * the file service on the caller's behalf, so it must be one of the caller's files.
 * InvalidArgument naming the index of the first that is not; Unavailable when the file service
 * cannot say, so that nothing is attached unchecked.
 */
export async function resolveAttachments(
  files: FileLookup,
  fileIds: readonly string[],
  current: readonly StoredAttachment[],
  ctx: HandlerContext,
): Promise<StoredAttachment[]> {
  const kept = new Map(current.map((a) => [a.fileId, a]));
  const answers = await Promise.allSettled(
    fileIds.map((fileId) => kept.get(fileId) ?? describeFile(files, fileId, ctx)),
  );
  return answers.map((answer, i) => {
    if (answer.status === "fulfilled") return answer.value;
    if (ConnectError.from(answer.reason).code === Code.NotFound) {
      throw new ConnectError(
        `attachment_ids[${i}]: file ${fileIds[i]} not found`,
        Code.InvalidArgument,
      );
    }
    throw failedOnBehalf(`could not look up file ${fileIds[i]} in the file service`, answer.reason);
  });
}

async function describeFile(
  files: FileLookup,
  fileId: string,
  ctx: HandlerContext,
): Promise<StoredAttachment> {
  const file = await files.getFile({ id: fileId }, onBehalfOf(ctx));
  return {
    fileId,
    filename: file.filename,
    sizeBytes: Number(file.sizeBytes),
    contentType: file.contentType,
  };
}
