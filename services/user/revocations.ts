import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { ServiceImpl } from "@connectrpc/connect";
import type { SqlEntityManager } from "@mikro-orm/postgresql";
import type { UserService } from "../../gen/protomesh/user/v1/user_pb.ts";
import { requireIdentity } from "../../kit/auth/identity.ts";
import { type PolledRevocationList, pollRevocations } from "../../kit/auth/revocations.ts";
import type { Database } from "../../kit/db/database.ts";
import type { Log } from "../../kit/log.ts";
import type { UserConfig } from "./config.ts";
import { RefreshToken, TokenRevocation, type TokenRevocationRow } from "./entities.ts";

/** The clock skew every verifier allows, in seconds: an expired token passes for this long. */
const verifierSkewSec = 30;

/** The revoked accounts of the user service, and how to revoke one. */
export interface Revocations {
  /** What this process's verifier checks, reloaded from the database. */
  readonly list: PolledRevocationList;
  /** Every revocation still in force, oldest first. */
  inForce(): Promise<readonly TokenRevocationRow[]>;
  /**
   * Ends every session of an account, in the caller's transaction: its refresh tokens are
   * revoked and the access tokens issued to it until now will be refused. Reload the list
   * once the transaction has committed.
   */
  revoke(em: SqlEntityManager, userId: string): Promise<void>;
  /** The "iat" of a token issued now to an account: never before its revocation. */
  issuedAtFor(em: SqlEntityManager, userId: string): Promise<number>;
}

type RevocationRpcs = Pick<ServiceImpl<typeof UserService>, "logoutAll" | "listRevocations">;

/**
 * Keeps the revocations in the user service's database, one row per account, for as long as
 * a token issued before them could still pass a verifier (ACCESS_TOKEN_TTL_S plus the skew).
 */
export function createRevocations(db: Database, config: UserConfig, log: Log): Revocations {
  const windowMs = (config.ACCESS_TOKEN_TTL_S + verifierSkewSec) * 1000;

  const inForce = () =>
    db
      .fork()
      .find(
        TokenRevocation,
        { revokedBefore: { $gt: new Date(Date.now() - windowMs) } },
        { orderBy: { revokedBefore: "asc" } },
      );

  return {
    inForce,
    list: pollRevocations({
      fetch: async () =>
        (await inForce()).map((r) => ({
          userId: r.userId,
          revokedBeforeSec: r.revokedBefore.getTime() / 1000,
        })),
      intervalMs: config.REVOCATION_POLL_MS,
      log,
    }),
    async revoke(em, userId) {
      const now = new Date();
      await em.nativeUpdate(RefreshToken, { userId, revokedAt: null }, { revokedAt: now });
      // "iat" is in whole seconds, so a token issued earlier in this second cannot be told from
      // one issued later in it: every token of this second is refused, and issuedAtFor dates
      // the account's next tokens from the next second on. A revocation within that second
      // moves one second further, past the tokens so dated.
      const revokedBefore = new Date((Math.floor(now.getTime() / 1000) + 1) * 1000);
      await em.execute(
        `insert into token_revocation (user_id, revoked_before) values (?, ?)
         on conflict (user_id) do update set revoked_before = greatest(
           excluded.revoked_before, token_revocation.revoked_before + interval '1 second')`,
        [userId, revokedBefore],
      );
      await em.nativeDelete(TokenRevocation, {
        revokedBefore: { $lt: new Date(now.getTime() - windowMs) },
      });
    },
    async issuedAtFor(em, userId) {
      const nowSec = Math.floor(Date.now() / 1000);
      const row = await em.findOne(TokenRevocation, { userId }, { fields: ["revokedBefore"] });
      return Math.max(nowSec, row ? row.revokedBefore.getTime() / 1000 : nowSec);
    },
  };
}

/** LogoutAll and ListRevocations. */
export function createRevocationRpcs(db: Database, revocations: Revocations): RevocationRpcs {
  return {
    async logoutAll(_req, ctx) {
      const { userId } = requireIdentity(ctx);
      await db.fork().transactional((em) => revocations.revoke(em, userId));
      await revocations.list.reload();
      return {};
    },

    async listRevocations() {
      return {
        revocations: (await revocations.inForce()).map((r) => ({
          userId: r.userId,
          revokeTime: timestampFromDate(r.revokedBefore),
        })),
      };
    },
  };
}
