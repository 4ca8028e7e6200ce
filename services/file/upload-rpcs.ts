import { randomUUID } from "node:crypto";
import { Code, ConnectError } from "@connectrpc/connect";
import type { UploadMetadata, UploadRequest } from "../../gen/protomesh/file/v1/file_pb.ts";
import { requireIdentity } from "../../kit/auth/identity.ts";
import { traceparentOf } from "../../kit/trace-context.ts";
import { sanitizeFilename } from "./content-disposition.ts";
import { contentTypeHeadBytes, resolveContentType } from "./content-type.ts";
import { fileToProto, recordFile } from "./files.ts";
import { createMeter, type Measured } from "./meter.ts";
import type { FileRpcs, RpcDeps } from "./rpc-deps.ts";

/** How much more quota an upload of unannounced size holds each time it runs out. */
const reservationStep = 64 * 1024 * 1024;

/** What the first message of an upload announces, checked. */
export interface Announced {
  readonly filename: string;
  readonly declaredType: string | undefined;
  readonly sizeBytes: number | undefined;
  readonly sha256: string | undefined;
}

/** Checks the metadata of an upload before any content is taken. */
export function checkMetadata(metadata: UploadMetadata, field: string): Announced {
  const size = metadata.sizeBytes;
  if (size !== undefined && size < 0n) {
    throw new ConnectError(`${field}.size_bytes must not be negative`, Code.InvalidArgument);
  }
  const sha256 = metadata.sha256?.toLowerCase();
  if (sha256 !== undefined && !/^[\da-f]{64}$/.test(sha256)) {
    throw new ConnectError(`${field}.sha256 must be 64 hex digits`, Code.InvalidArgument);
  }
  return {
    filename: sanitizeFilename(metadata.filename),
    declaredType: metadata.contentType || undefined,
    sizeBytes: size === undefined ? undefined : Number(size),
    sha256,
  };
}

/** Uploading a file in one stream. */
export function createUploadRpcs({ db, storage, jobs, quota }: RpcDeps): FileRpcs<"upload"> {
  return {
    async upload(requests, ctx) {
      const caller = requireIdentity(ctx);
      const messages = requests[Symbol.asyncIterator]();
      const first = await messages.next();
      if (first.done || first.value.payload.case !== "metadata") {
        throw new ConnectError("the first message must carry metadata", Code.InvalidArgument);
      }
      const announced = checkMetadata(first.value.payload.value, "metadata");
      if (announced.sizeBytes !== undefined) quota.checkFileSize(announced.sizeBytes);
      // An announced size is held whole; else the quota is held step by step as content comes.
      const reservation = await quota.reserve(
        caller.userId,
        announced.sizeBytes ?? 0,
        announced.sizeBytes ?? reservationStep,
      );
      const id = randomUUID();
      const storageKey = `files/${id}`;
      const write = await storage.create(storageKey).catch(async (err: unknown) => {
        await reservation.release();
        throw err;
      });
      let contentType: string;
      let measured: Measured;
      try {
        const meter = createMeter(contentTypeHeadBytes);
        let typeChecked = false;
        for await (const chunk of chunksOf(messages)) {
          meter.update(chunk);
          const size = meter.sizeBytes;
          if (announced.sizeBytes !== undefined && size > announced.sizeBytes) {
            throw new ConnectError(
              `the content is longer than the announced ${announced.sizeBytes} bytes`,
              Code.InvalidArgument,
            );
          }
          quota.checkFileSize(size);
          await reservation.grow(size, size + reservationStep);
          // A declared image type the first bytes contradict is refused before the rest comes.
          if (!typeChecked && meter.headFull) {
            await resolveContentType(meter.head, announced.declaredType);
            typeChecked = true;
          }
          await write.write(chunk);
        }
        measured = meter.finish();
        checkAnnounced(announced, measured.sizeBytes, measured.sha256);
        contentType = await resolveContentType(measured.head, announced.declaredType);
        await write.commit();
      } catch (err) {
        // The upload's own error is the answer, whatever aborting it comes to.
        await write.abort().catch(() => {});
        await reservation.release();
        throw err;
      }
      try {
        // Node's HTTP/2 clients end a stream they cancel (END_STREAM), then reset it: the reset
        // lands while the content is being committed. Only an announced size or digest makes
        // an upload certain; without one, a reset seen by now still refuses it.
        if (ctx.signal.aborted)
          throw new ConnectError("the client cancelled the upload", Code.Canceled);
        const row = await db.fork().transactional(async (em) => {
          await reservation.settle(em);
          return recordFile(
            em,
            jobs,
            {
              id,
              ownerId: caller.userId,
              filename: announced.filename,
              contentType,
              sizeBytes: measured.sizeBytes,
              sha256: measured.sha256,
              storageKey,
            },
            traceparentOf(ctx),
          );
        });
        return fileToProto(row);
      } catch (err) {
        await storage.delete(storageKey);
        await reservation.release();
        throw err;
      }
    },
  };
}

/** Fails with InvalidArgument when the content is not what the metadata announced. */
export function checkAnnounced(announced: Announced, sizeBytes: number, sha256: string): void {
  if (announced.sizeBytes !== undefined && sizeBytes !== announced.sizeBytes) {
    throw new ConnectError(
      `the content is ${sizeBytes} bytes, not the announced ${announced.sizeBytes}`,
      Code.InvalidArgument,
    );
  }
  if (announced.sha256 !== undefined && sha256 !== announced.sha256) {
    throw new ConnectError(
      `the content's sha256 is ${sha256}, not the announced ${announced.sha256}`,
      Code.InvalidArgument,
    );
  }
}

/** The content of the messages after the first: each must carry a chunk. */
async function* chunksOf(messages: AsyncIterator<UploadRequest>): AsyncGenerator<Uint8Array> {
  for (let next = await messages.next(); !next.done; next = await messages.next()) {
    const message = next.value;
    if (message.payload.case !== "chunk") {
      throw new ConnectError(
        "only the first message carries metadata; the following ones carry chunks",
        Code.InvalidArgument,
      );
    }
    if (message.payload.value.byteLength > 0) yield message.payload.value;
  }
}
