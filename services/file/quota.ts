import { randomUUID } from "node:crypto";
import { Code, ConnectError } from "@connectrpc/connect";
import type { SqlEntityManager } from "@mikro-orm/postgresql";
import type { Database } from "../../kit/db/database.ts";

/** The bounds on what a user stores. */
export interface QuotaLimits {
  /** The largest single file. */
  readonly maxFileBytes: number;
  /** The most bytes one user may hold: files, open upload sessions and uploads under way. */
  readonly quotaBytes: number;
  /** How long a reservation outlives its last growth, should its process die. */
  readonly reservationTtlMs: number;
}

/** Bytes held for an upload in progress. */
export interface Reservation {
  readonly id: string;
  /** How many bytes it holds now. */
  readonly bytes: number;
  /**
   * Holds `wanted` bytes in all, or as many as the quota has room for but at least `needed`;
   * throws ResourceExhausted when not even `needed` fit.
   */
  grow(needed: number, wanted: number): Promise<void>;
  /** Gives the bytes back (the upload failed). Safe to call twice. */
  release(): Promise<void>;
  /** Gives the bytes back within `em`'s transaction, which records the file that holds them now. */
  settle(em: SqlEntityManager): Promise<void>;
}

/** The quota of every user, and the checks that keep uploads within it. */
export interface Quota {
  /**
   * Holds bytes for an upload of `ownerId` as grow does (more with grow later), or throws
   * ResourceExhausted. Checks and reservations of one owner are serialized, so that two
   * concurrent uploads cannot together exceed the quota.
   */
  reserve(ownerId: string, needed: number, wanted: number): Promise<Reservation>;
  /**
   * Within `em`'s transaction, locks the owner's quota and throws ResourceExhausted unless
   * `bytes` more fit. The caller records what holds them before the transaction ends.
   */
  admit(em: SqlEntityManager, ownerId: string, bytes: number): Promise<void>;
  /** Throws ResourceExhausted when one file of this size is above the limit. */
  checkFileSize(bytes: number): void;
}

/** Creates the quota checks of the file service. */
export function createQuota(db: Database, limits: QuotaLimits): Quota {
  const { maxFileBytes, quotaBytes, reservationTtlMs } = limits;
  const checkFileSize = (bytes: number) => {
    if (bytes > maxFileBytes) {
      throw new ConnectError(
        `the file is larger than the limit of ${maxFileBytes} bytes`,
        Code.ResourceExhausted,
      );
    }
  };
  // What the owner holds, besides the reservation `except`, with the owner's lock taken.
  const used = async (em: SqlEntityManager, ownerId: string, except: string): Promise<number> => {
    await em.execute("select pg_advisory_xact_lock(hashtextextended(?, 0))", [`quota:${ownerId}`]);
    const [row] = await em.execute<{ used: string }[]>(
      `select
        (select coalesce(sum(size_bytes), 0) from stored_file where owner_id = ?)
        + (select coalesce(sum(size_bytes), 0) from upload_session
            where owner_id = ? and file_id is null
              and (expires_at > now() or appending_until > now()))
        + (select coalesce(sum(bytes), 0) from quota_reservation
            where owner_id = ? and expires_at > now() and id::text <> ?) as used`,
      [ownerId, ownerId, ownerId, except],
    );
    return Number(row?.used ?? 0);
  };
  // Locks the owner's quota and returns the room left, once `needed` bytes are known to fit.
  const roomFor = async (em: SqlEntityManager, ownerId: string, needed: number, except = "") => {
    const room = quotaBytes - (await used(em, ownerId, except));
    if (needed > room) {
      throw new ConnectError(
        `the upload does not fit in the quota of ${quotaBytes} bytes (${Math.max(0, room)} left)`,
        Code.ResourceExhausted,
      );
    }
    return room;
  };
  const expiry = () => new Date(Date.now() + reservationTtlMs);

  return {
    checkFileSize,
    async admit(em, ownerId, bytes) {
      await roomFor(em, ownerId, bytes);
    },
    async reserve(ownerId, needed, wanted) {
      const id = randomUUID();
      let held = 0;
      const hold = (atLeast: number, wanted: number) =>
        db.fork().transactional(async (em) => {
          // Never more than one file may hold: other uploads of the owner need room too.
          const room = await roomFor(em, ownerId, atLeast, id);
          const bytes = Math.min(wanted, maxFileBytes, room);
          await em.execute(
            `insert into quota_reservation (id, owner_id, bytes, expires_at) values (?, ?, ?, ?)
             on conflict (id) do update set bytes = excluded.bytes, expires_at = excluded.expires_at`,
            [id, ownerId, bytes, expiry()],
          );
          held = bytes;
        });
      await hold(needed, wanted);
      return {
        id,
        get bytes() {
          return held;
        },
        async grow(atLeast, wanted) {
          if (atLeast > held) await hold(atLeast, wanted);
        },
        async release() {
          await db.fork().execute("delete from quota_reservation where id = ?", [id]);
        },
        async settle(em) {
          await em.execute("delete from quota_reservation where id = ?", [id]);
        },
      };
    },
  };
}
