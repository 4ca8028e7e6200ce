import { randomUUID } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import type { SqlEntityManager } from "@mikro-orm/postgresql";
import {
  type AppendUploadRequest,
  type UploadSession as SessionMessage,
  UploadSessionSchema,
} from "../../gen/protomesh/file/v1/file_pb.ts";
import { type Identity, requireIdentity } from "../../kit/auth/identity.ts";
import type { Database } from "../../kit/db/database.ts";
import type { Log } from "../../kit/log.ts";
import { traceparentOf } from "../../kit/trace-context.ts";
import { parseUuid } from "../../kit/uuid.ts";
import { contentTypeHeadBytes, resolveContentType } from "./content-type.ts";
import {
  StoredFile,
  type StoredFileRow,
  UploadSession,
  type UploadSessionRow,
} from "./entities.ts";
import { fileToProto, recordFile } from "./files.ts";
import { measure } from "./meter.ts";
import type { FileRpcs, RpcDeps } from "./rpc-deps.ts";
import type { StageState } from "./storage/storage.ts";
import { checkAnnounced, checkMetadata } from "./upload-rpcs.ts";

/** How long an append holds its session without renewing the claim. */
const claimMs = 60_000;

/** The contract's view of a session, with its file once complete. */
function sessionToProto(row: UploadSessionRow, file: StoredFileRow | null): SessionMessage {
  return create(UploadSessionSchema, {
    id: row.id,
    filename: row.filename,
    contentType: row.contentType,
    sizeBytes: BigInt(row.sizeBytes),
    offset: BigInt(row.offset),
    expireTime: timestampFromDate(row.expiresAt),
    ...(file ? { file: fileToProto(file) } : {}),
  });
}

const notFound = (id: string) => new ConnectError(`upload session ${id} not found`, Code.NotFound);

/** One of the caller's sessions that has not expired; any other is NotFound. */
async function findOwnSession(
  em: SqlEntityManager,
  caller: Identity,
  id: string,
): Promise<UploadSessionRow> {
  const row = await em.findOne(UploadSession, {
    id,
    ownerId: caller.userId,
    expiresAt: { $gt: new Date() },
  });
  if (row === null) throw notFound(id);
  return row;
}

const stateOf = (row: UploadSessionRow): StageState => ({
  size: row.offset,
  opaque: row.stageState,
});

/** Resumable uploads: sessions whose content arrives over several AppendUpload calls. */
export function createSessionRpcs(
  deps: RpcDeps,
): FileRpcs<"createUploadSession" | "getUploadSession" | "appendUpload" | "cancelUploadSession"> {
  const { db, storage, jobs, quota, config } = deps;
  const ttlMs = config.FILE_UPLOAD_SESSION_TTL_S * 1000;

  // A stage an earlier attempt completed (and then failed after) is complete already.
  const completeStage = async (session: UploadSessionRow, state: StageState) => {
    try {
      await storage.staging.complete(session.storageKey, state);
    } catch (err) {
      if ((await storage.size(session.storageKey)) !== session.sizeBytes) throw err;
    }
  };

  /**
   * Stores the complete content as a file. Content that is not what was announced is discarded
   * with the session (InvalidArgument); any other failure leaves both for a retry, which an
   * append of nothing at the session's size makes.
   */
  const complete = async (
    session: UploadSessionRow,
    state: StageState,
    traceparent: string | undefined,
  ): Promise<StoredFileRow> => {
    await completeStage(session, state);
    const range = { offset: 0, length: session.sizeBytes };
    const measured = await measure(storage.read(session.storageKey, range), contentTypeHeadBytes);
    let contentType: string;
    try {
      checkAnnounced(
        { ...session, declaredType: undefined, sha256: session.sha256 ?? undefined },
        measured.sizeBytes,
        measured.sha256,
      );
      contentType = await resolveContentType(measured.head, session.contentType);
    } catch (err) {
      await storage.delete(session.storageKey);
      await db.fork().nativeDelete(UploadSession, { id: session.id });
      throw err;
    }
    const fileId = randomUUID();
    const file = await db.fork().transactional(async (em) => {
      // Kept, with its file, until it expires: a client that resumes learns it is complete.
      const claimed = await em.nativeUpdate(
        UploadSession,
        { id: session.id, fileId: null },
        { fileId, appendingUntil: null },
      );
      if (claimed === 0) return null;
      return recordFile(
        em,
        jobs,
        {
          id: fileId,
          ownerId: session.ownerId,
          filename: session.filename,
          contentType,
          sizeBytes: measured.sizeBytes,
          sha256: measured.sha256,
          storageKey: session.storageKey,
        },
        traceparent,
      );
    });
    if (file !== null) return file;
    // The session went meanwhile: nothing refers to its content any more.
    await storage.delete(session.storageKey);
    throw notFound(session.id);
  };

  return {
    async createUploadSession(req, ctx) {
      const caller = requireIdentity(ctx);
      if (req.metadata === undefined) {
        throw new ConnectError("metadata is required", Code.InvalidArgument);
      }
      const announced = checkMetadata(req.metadata, "metadata");
      if (announced.sizeBytes === undefined) {
        throw new ConnectError("metadata.size_bytes is required", Code.InvalidArgument);
      }
      quota.checkFileSize(announced.sizeBytes);
      const id = randomUUID();
      const storageKey = `files/${randomUUID()}`;
      const state = await storage.staging.open(storageKey);
      const now = new Date();
      const row: UploadSessionRow = {
        id,
        ownerId: caller.userId,
        filename: announced.filename,
        contentType: announced.declaredType ?? "application/octet-stream",
        sizeBytes: announced.sizeBytes,
        offset: 0,
        sha256: announced.sha256 ?? null,
        storageKey,
        stageState: state.opaque,
        appendingUntil: null,
        fileId: null,
        expiresAt: new Date(now.getTime() + ttlMs),
        createdAt: now,
      };
      try {
        await db.fork().transactional(async (em) => {
          await quota.admit(em, caller.userId, announced.sizeBytes ?? 0);
          em.create(UploadSession, row);
        });
      } catch (err) {
        await storage.staging.discard(storageKey, state);
        throw err;
      }
      // Empty content is complete at once: no append will come (tus clients send none).
      if (row.sizeBytes > 0) return sessionToProto(row, null);
      const file = await complete(row, state, traceparentOf(ctx));
      return sessionToProto({ ...row, fileId: file.id }, file);
    },

    async getUploadSession(req, ctx) {
      const id = parseUuid(req.id, "id");
      const em = db.fork();
      const session = await findOwnSession(em, requireIdentity(ctx), id);
      const file = session.fileId ? await em.findOne(StoredFile, { id: session.fileId }) : null;
      return sessionToProto(session, file);
    },

    async appendUpload(requests, ctx) {
      const caller = requireIdentity(ctx);
      const messages = requests[Symbol.asyncIterator]();
      const first = await messages.next();
      if (first.done || first.value.payload.case !== "start") {
        throw new ConnectError("the first message must carry start", Code.InvalidArgument);
      }
      const start = first.value.payload.value;
      const id = parseUuid(start.id, "start.id");
      const em = db.fork();
      const found = await findOwnSession(em, caller, id);
      // Complete already: the answer a client that lost the last one needs.
      if (found.fileId) {
        return sessionToProto(found, await em.findOne(StoredFile, { id: found.fileId }));
      }
      const session = await claim(em, found, start.offset);
      // Renewed until the append and the completion are done: a file of gigabytes takes a while
      // to read back and hash.
      const renew = setInterval(() => {
        db.fork()
          .nativeUpdate(
            UploadSession,
            { id, appendingUntil: { $ne: null } },
            { appendingUntil: new Date(Date.now() + claimMs) },
          )
          .catch(() => {});
      }, claimMs / 3);
      try {
        let state = stateOf(session);
        let error: unknown;
        try {
          const room = session.sizeBytes - session.offset;
          const result = await storage.staging.append(
            session.storageKey,
            state,
            boundedChunks(messages, room),
          );
          state = result.state;
          error = result.error;
        } finally {
          await db
            .fork()
            .nativeUpdate(UploadSession, { id }, { offset: state.size, stageState: state.opaque });
        }
        const now = { ...session, offset: state.size, stageState: state.opaque };
        if (error !== undefined) throw error;
        if (state.size < session.sizeBytes) return sessionToProto(now, null);
        const file = await complete(now, state, traceparentOf(ctx));
        return sessionToProto({ ...now, fileId: file.id }, file);
      } finally {
        clearInterval(renew);
        await db.fork().nativeUpdate(UploadSession, { id }, { appendingUntil: null });
      }
    },

    async cancelUploadSession(req, ctx) {
      const caller = requireIdentity(ctx);
      const id = parseUuid(req.id, "id");
      const em = db.fork();
      const [row] = await em.execute<
        { storage_key: string; stage_state: string; offset: string }[]
      >(
        `delete from upload_session where id = ? and owner_id = ? and file_id is null
           and (appending_until is null or appending_until < now())
         returning storage_key, stage_state, "offset"`,
        [id, caller.userId],
      );
      if (row === undefined) {
        const busy = await em.count(UploadSession, {
          id,
          ownerId: caller.userId,
          appendingUntil: { $gte: new Date() },
        });
        if (busy > 0) {
          throw new ConnectError(
            "an append to the session is under way: cancel it once that ends",
            Code.FailedPrecondition,
          );
        }
        return {};
      }
      await storage.staging.discard(row.storage_key, {
        size: Number(row.offset),
        opaque: row.stage_state,
      });
      return {};
    },
  };
}

/**
 * Claims a session for one append at `offset`: FailedPrecondition when the session is elsewhere
 * (another append holds it, or its offset is not the one given), or expires.
 */
async function claim(
  em: SqlEntityManager,
  session: UploadSessionRow,
  offset: bigint,
): Promise<UploadSessionRow> {
  const now = new Date();
  const claimed = await em.nativeUpdate(
    UploadSession,
    {
      id: session.id,
      offset: Number(offset),
      fileId: null,
      expiresAt: { $gt: now },
      $or: [{ appendingUntil: null }, { appendingUntil: { $lt: now } }],
    },
    { appendingUntil: new Date(now.getTime() + claimMs) },
  );
  if (claimed === 0) {
    const reason =
      BigInt(session.offset) !== offset
        ? `the session's content continues at offset ${session.offset}, not ${offset}`
        : "another append to the session is under way";
    throw new ConnectError(reason, Code.FailedPrecondition);
  }
  return session;
}

/** The chunks after the first message, refusing content beyond `room` bytes. */
async function* boundedChunks(
  messages: AsyncIterator<AppendUploadRequest>,
  room: number,
): AsyncGenerator<Uint8Array> {
  let left = room;
  for (let next = await messages.next(); !next.done; next = await messages.next()) {
    const { payload } = next.value;
    if (payload.case !== "chunk") {
      throw new ConnectError(
        "only the first message carries start; the following ones carry chunks",
        Code.InvalidArgument,
      );
    }
    if (payload.value.byteLength > left) {
      if (left > 0) yield payload.value.subarray(0, left);
      throw new ConnectError(
        `the content is longer than the session's ${room} remaining bytes`,
        Code.InvalidArgument,
      );
    }
    left -= payload.value.byteLength;
    if (payload.value.byteLength > 0) yield payload.value;
  }
}

/**
 * Deletes the sessions that expired, and their staged content, one at a time: a stage the store
 * fails to discard keeps its session for the next sweep. A session an append still holds waits.
 * Returns how many went.
 */
export async function sweepExpiredSessions(
  db: Database,
  discard: (key: string, state: StageState) => Promise<void>,
  log: Log,
): Promise<number> {
  const expired = await db.fork().find(UploadSession, {
    expiresAt: { $lte: new Date() },
    $or: [{ appendingUntil: null }, { appendingUntil: { $lt: new Date() } }],
  });
  let swept = 0;
  for (const session of expired) {
    try {
      // A complete session's content is its file's now.
      if (!session.fileId) await discard(session.storageKey, stateOf(session));
      await db.fork().nativeDelete(UploadSession, { id: session.id });
      swept += 1;
    } catch (err) {
      log.warn({ err, sessionId: session.id }, "an expired upload session could not be discarded");
    }
  }
  return swept;
}
