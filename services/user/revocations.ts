import type { SqlEntityManager } from "@mikro-orm/postgresql";
import { type PolledRevocationList, pollRevocations } from "../../kit/auth/revocations.ts";
import { defaultClockSkewSec } from "../../kit/auth/token-verifier.ts";
import type { Database } from "../../kit/db/database.ts";
import type { Log } from "../../kit/log.ts";
import type { UserConfig } from "./config.ts";
import { lockAccountForUpdate, RefreshToken } from "./entities.ts";

/** A revocation as stored: tokens of the account issued before `revokedBefore` are refused. */
export interface StoredRevocation {
  readonly userId: string;
  readonly revokedBefore: Date;
}

/** Ends every session of an account, in the transaction of `revoking`. */
export type Revoke = (userId: string) => Promise<void>;

/** The revoked accounts of the user service, and how to revoke one. */
export interface Revocations {
  /** What this process's verifier checks, reloaded from the database. */
  readonly list: PolledRevocationList;
  /** Every revocation still in force, oldest first. */
  inForce(): Promise<readonly StoredRevocation[]>;
  /**
   * Runs `work` in a transaction of the user service's database, in which `revoke(userId)`
   * ends every session of an account: its refresh tokens are revoked and the access tokens
   * issued to it until now will be refused. Once the transaction commits, this process's list
   * is reloaded, so this instance refuses those tokens at once.
   */
  revoking<T>(work: (em: SqlEntityManager, revoke: Revoke) => Promise<T>): Promise<T>;
  /**
   * When a token issued now to an account counts as issued, in milliseconds: never before
   * the account's revocation. Call it in the transaction that holds the account's row.
   */
  issuedAtMs(em: SqlEntityManager, userId: string): Promise<number>;
}

/**
 * Keeps the revocations in the user service's database, one row per account, for as long as
 * a token issued before them could still pass a verifier (ACCESS_TOKEN_TTL_S plus the skew).
 * Revocations and tokens are dated by the database's clock, so instances whose clocks differ
 * agree on which came first, to the millisecond of "iat".
 */
export function createRevocations(db: Database, config: UserConfig, log: Log): Revocations {
  const windowSec = config.ACCESS_TOKEN_TTL_S + defaultClockSkewSec;
  const inForce = async (): Promise<StoredRevocation[]> => {
    const rows = await db.fork().execute<{ user_id: string; revoked_before: Date | string }[]>(
      `select user_id, revoked_before from token_revocation
       where revoked_before > clock_timestamp() - make_interval(secs => ?)
       order by revoked_before`,
      [windowSec],
    );
    return rows.map((r) => ({ userId: r.user_id, revokedBefore: new Date(r.revoked_before) }));
  };

  const list = pollRevocations({
    fetch: async () =>
      (await inForce()).map((r) => ({
        userId: r.userId,
        revokedBeforeSec: r.revokedBefore.getTime() / 1000,
      })),
    intervalMs: config.REVOCATION_POLL_MS,
    log,
  });

  async function revoke(em: SqlEntityManager, userId: string): Promise<void> {
    // The account's row stays locked until the revocation commits. A login or a refresh of
    // the account, which holds the row too while it records its tokens, has either finished
    // (its tokens are revoked here) or waits, and then sees the revocation.
    await lockAccountForUpdate(em, userId);
    await em.nativeUpdate(RefreshToken, { userId, revokedAt: null }, { revokedAt: new Date() });
    // Rounded up to the millisecond: a token issued before it has an earlier "iat". A token
    // issued after a revocation within the same millisecond is dated at the revocation
    // (issuedAtMs), so the next revocation moves at least a millisecond past it.
    await em.execute(
      `insert into token_revocation (user_id, revoked_before)
       values (?, to_timestamp(ceil(extract(epoch from clock_timestamp()) * 1000) / 1000))
       on conflict (user_id) do update set revoked_before = greatest(
         excluded.revoked_before, token_revocation.revoked_before + interval '1 millisecond')`,
      [userId],
    );
    await em.execute(
      "delete from token_revocation where revoked_before < clock_timestamp() - make_interval(secs => ?)",
      [windowSec],
    );
  }

  return {
    inForce,
    list,
    async revoking(work) {
      const result = await db
        .fork()
        .transactional((em) => work(em, (userId) => revoke(em, userId)));
      await list.reload();
      return result;
    },
    async issuedAtMs(em, userId) {
      const [row] = await em.execute<{ now_ms: string; revoked_ms: string | null }[]>(
        `select floor(extract(epoch from clock_timestamp()) * 1000) as now_ms,
           (select extract(epoch from revoked_before) * 1000
            from token_revocation where user_id = ?) as revoked_ms`,
        [userId],
      );
      return Math.max(Number(row?.now_ms ?? Date.now()), Number(row?.revoked_ms ?? 0));
    },
  };
}
