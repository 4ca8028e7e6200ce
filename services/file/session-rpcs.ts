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

  // Stores the complete content as a file, or discards it when it is not what was announced.
  const complete = async (
    session: UploadSessionRow,
    state: StageState,
    traceparent: string | undefined,
  ): Promise<StoredFileRow> => {
    await storage.staging.complete(session.storageKey, state);
    const range = { offset: 0, length: session.sizeBytes };
    try {
      const measured = await measure(storage.read(session.storageKey, range), contentTypeHeadBytes);
      checkAnnounced(
        { ...session, declaredType: undefined, sha256: session.sha256 ?? undefined },
        measured.sizeBytes,
        measured.sha256,
      );
      const contentType = await resolveContentType(measured.head, session.contentType);
      const fileId = randomUUID();
      return await db.fork().transactional(async (em) => {
        // Kept, with its file, until it expires: a client that resumes learns it is complete.
        const claimed = await em.nativeUpdate(
          UploadSession,
          { id: session.id, fileId: null },
          { fileId },
        );
        if (claimed === 0) throw notFound(session.id);
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
    } catch (err) {
      await storage.delete(session.storageKey);
      await db.fork().nativeDelete(UploadSession, { id: session.id });
      throw err;
    }
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
      return sessionToProto(row, null);
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
      const session = await claim(db.fork(), caller, id, start.offset);
      const renew = setInterval(() => {
        db.fork()
          .nativeUpdate(UploadSession, { id }, { appendingUntil: new Date(Date.now() + claimMs) })
          .catch(() => {});
      }, claimMs / 3);
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
        clearInterval(renew);
        await db
          .fork()
          .nativeUpdate(
            UploadSession,
            { id },
            { offset: state.size, stageState: state.opaque, appendingUntil: null },
          );
      }
      const now = { ...session, offset: state.size, stageState: state.opaque };
      if (error !== undefined) throw error;
      if (state.size < session.sizeBytes) return sessionToProto(now, null);
      const file = await complete(now, state, traceparentOf(ctx));
      return sessionToProto({ ...now, fileId: file.id }, file);
    },

    async cancelUploadSession(req, ctx) {
      const caller = requireIdentity(ctx);
      const id = parseUuid(req.id, "id");
      const [row] = await db
        .fork()
        .execute<{ storage_key: string; stage_state: string; offset: string }[]>(
          'delete from upload_session where id = ? and owner_id = ? and file_id is null returning storage_key, stage_state, "offset"',
          [id, caller.userId],
        );
      if (row !== undefined) {
        await storage.staging.discard(row.storage_key, {
          size: Number(row.offset),
          opaque: row.stage_state,
        });
      }
      return {};
    },
  };
}

/**
 * Claims a session for one append at `offset`: FailedPrecondition when the session is elsewhere
 * (another append holds it, or its offset is not the one given).
 */
async function claim(
  em: SqlEntityManager,
  caller: Identity,
  id: string,
  offset: bigint,
): Promise<UploadSessionRow> {
  const session = await findOwnSession(em, caller, id);
  const claimed = await em.nativeUpdate(
    UploadSession,
    {
      id,
      offset: Number(offset),
      fileId: null,
      $or: [{ appendingUntil: null }, { appendingUntil: { $lt: new Date() } }],
    },
    { appendingUntil: new Date(Date.now() + claimMs) },
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

/** Deletes the sessions that expired, and their staged content. Returns how many. */
export async function sweepExpiredSessions(
  em: SqlEntityManager,
  discard: (key: string, state: StageState) => Promise<void>,
): Promise<number> {
  const rows = await em.execute<
    { storage_key: string; stage_state: string; offset: string; file_id: string | null }[]
  >(
    'delete from upload_session where expires_at <= now() returning storage_key, stage_state, "offset", file_id',
  );
  for (const row of rows) {
    // A complete session's content is its file's now.
    if (row.file_id !== null) continue;
    await discard(row.storage_key, { size: Number(row.offset), opaque: row.stage_state });
  }
  return rows.length;
}
