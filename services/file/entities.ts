import { defineEntity, type InferEntity, p } from "@mikro-orm/core";
import { jobEntities } from "../../kit/jobs/outbox.ts";

/** What became of a file's thumbnail. */
export const thumbnailStates = ["pending", "ready", "unsupported", "failed"] as const;

/** A stored file: its metadata here, its content in the storage under `storageKey`. */
export const StoredFile = defineEntity({
  name: "StoredFile",
  tableName: "stored_file",
  properties: {
    id: p.uuid().primary(),
    ownerId: p.uuid(),
    /** The cleaned name the user gave; metadata only, never a storage key. */
    filename: p.text(),
    contentType: p.text(),
    sizeBytes: p.bigint("number"),
    /** 64 lowercase hex digits. */
    sha256: p.text(),
    storageKey: p.text(),
    thumbnailState: p.enum([...thumbnailStates]),
    /** Where the rendered thumbnail is stored, once it is ready. */
    thumbnailKey: p.text().nullable(),
    createdAt: p.datetime(),
  },
});

/** A stored file as loaded from the database. */
export type StoredFileRow = InferEntity<typeof StoredFile>;

/**
 * A resumable upload: its content is staged in the storage until the last byte arrives. Its
 * size counts against the owner's quota until it completes, is cancelled or expires.
 */
export const UploadSession = defineEntity({
  name: "UploadSession",
  tableName: "upload_session",
  properties: {
    id: p.uuid().primary(),
    ownerId: p.uuid(),
    filename: p.text(),
    contentType: p.text(),
    sizeBytes: p.bigint("number"),
    /** Bytes staged so far. */
    offset: p.bigint("number"),
    /** The digest the content must have, when the client announced one. */
    sha256: p.text().nullable(),
    /** The key the file will be stored under, and its stage's state (see StagingArea). */
    storageKey: p.text(),
    stageState: p.text(),
    /**
     * Set while an append is under way, to when its claim lapses unless renewed: one append
     * at a time, and a process that died mid-append does not hold the session for long.
     */
    appendingUntil: p.datetime().nullable(),
    /** The file it became, once complete. */
    fileId: p.uuid().nullable(),
    expiresAt: p.datetime(),
    createdAt: p.datetime(),
  },
});

/** An upload session as loaded from the database. */
export type UploadSessionRow = InferEntity<typeof UploadSession>;

/**
 * Bytes an Upload in progress holds against its owner's quota, grown as its content arrives;
 * removed when it ends. A reservation left by a process that died lapses at `expiresAt`.
 */
export const QuotaReservation = defineEntity({
  name: "QuotaReservation",
  tableName: "quota_reservation",
  properties: {
    id: p.uuid().primary(),
    ownerId: p.uuid(),
    bytes: p.bigint("number"),
    expiresAt: p.datetime(),
  },
});

/** Every entity of the file service, with the toolkit's outbox. */
export const fileEntities = [...jobEntities, StoredFile, UploadSession, QuotaReservation];
