import { randomUUID } from "node:crypto";
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import { LockMode } from "@mikro-orm/core";
import type { SqlEntityManager } from "@mikro-orm/postgresql";
import type { UserService } from "../../gen/protomesh/user/v1/user_pb.ts";
import { requireIdentity } from "../../kit/auth/identity.ts";
import type { Database } from "../../kit/db/database.ts";
import type { Log } from "../../kit/log.ts";
import type { UserConfig } from "./config.ts";
import { userToProto } from "./convert.ts";
import {
  lockAccountForUpdate,
  lockedAccount,
  RefreshToken,
  User,
  type UserRow,
} from "./entities.ts";
import type { SigningKeys } from "./keys.ts";
import { type PasswordCheck, wrongPassword } from "./password-check.ts";
import { hashPassword } from "./passwords.ts";
import type { Revocations } from "./revocations.ts";
import { newOpaqueToken, rolesOf, signAccessToken, type TokenPolicy, tokenHash } from "./tokens.ts";
import { checkPassword, normalizeEmail } from "./validation.ts";

/** What the session RPCs need. */
export interface SessionDeps {
  readonly db: Database;
  readonly keys: SigningKeys;
  readonly config: UserConfig;
  readonly log: Log;
  readonly passwords: PasswordCheck;
  readonly revocations: Revocations;
}

type SessionRpcs = Pick<
  ServiceImpl<typeof UserService>,
  "login" | "refresh" | "logout" | "changePassword"
>;

const wrongCredentials = () => new ConnectError("invalid email or password", Code.Unauthenticated);
const disabledAccount = () =>
  new ConnectError("this account is disabled; an admin can enable it", Code.PermissionDenied);
const unverifiedEmail = () =>
  new ConnectError(
    "verify your email address first: follow the verification mail sent at registration",
    Code.FailedPrecondition,
  );
const badRefreshToken = () =>
  new ConnectError("invalid or expired refresh token", Code.Unauthenticated);

/**
 * Login, Refresh, Logout and ChangePassword. Login refuses a disabled account, and one whose
 * email is not verified yet unless LOGIN_REQUIRE_VERIFIED_EMAIL is off. ChangePassword ends
 * every session of the account, as LogoutAll does. Refresh tokens rotate on every use;
 * presenting a rotated-out one is taken as theft and revokes its whole family (RFC 9700
 * §4.14.2).
 */
export function createSessionRpcs(deps: SessionDeps): SessionRpcs {
  const { db, keys, config, log, passwords, revocations } = deps;
  const policy: TokenPolicy = {
    issuer: config.JWT_ISSUER,
    audience: config.JWT_AUDIENCE,
    accessTtlSec: config.ACCESS_TOKEN_TTL_S,
    refreshTtlSec: config.REFRESH_TOKEN_TTL_S,
  };

  /**
   * Issues an access token and a refresh token in `familyId`, storing the latter's hash. Runs
   * in the transaction that holds the account's row (lockedAccount), so a revocation of the
   * account cannot commit in between.
   */
  async function issue(em: SqlEntityManager, user: UserRow, familyId: string) {
    const issuedAtMs = await revocations.issuedAtMs(em, user.id);
    const refreshToken = newOpaqueToken();
    const now = new Date();
    em.create(RefreshToken, {
      id: randomUUID(),
      tokenHash: tokenHash(refreshToken),
      familyId,
      userId: user.id,
      createdAt: now,
      expiresAt: new Date(now.getTime() + policy.refreshTtlSec * 1000),
    });
    await em.flush();
    const accessToken = await signAccessToken(keys, policy, {
      userId: user.id,
      email: user.email,
      roles: rolesOf(user.role),
      issuedAtMs,
    });
    return { accessToken, refreshToken, expiresIn: policy.accessTtlSec, tokenType: "Bearer" };
  }

  return {
    async login(req) {
      const checked = await passwords.confirm(normalizeEmail(req.email), req.password);
      if (!checked) throw wrongCredentials();
      // Checked after the password, so only the account's owner learns that it exists.
      if (checked.disabled) throw disabledAccount();
      if (config.LOGIN_REQUIRE_VERIFIED_EMAIL && !checked.emailVerified) throw unverifiedEmail();
      return db.fork().transactional(async (em) => {
        // The account as it is now: a password change, a disabling, a deletion or a role change
        // that committed while the password was being checked is taken into account.
        const user = await lockedAccount(em, checked.id);
        if (user?.passwordHash !== checked.passwordHash) throw wrongCredentials();
        if (user.disabled) throw disabledAccount();
        return { ...(await issue(em, user, randomUUID())), user: userToProto(user) };
      });
    },

    async refresh(req) {
      if (req.refreshToken === "")
        throw new ConnectError("refresh_token is required", Code.InvalidArgument);
      const hash = tokenHash(req.refreshToken);
      const known = await db
        .fork()
        .findOne(RefreshToken, { tokenHash: hash }, { fields: ["userId"] });
      if (!known) throw badRefreshToken();
      const outcome = await db.fork().transactional(async (em) => {
        // The account's row first, as a revocation takes it: a refresh that waited for one
        // finds its token revoked.
        const user = await lockedAccount(em, known.userId);
        const token = await em.findOne(
          RefreshToken,
          { tokenHash: hash },
          { lockMode: LockMode.PESSIMISTIC_WRITE },
        );
        // A revoked token's family was revoked with it (logout, or a revocation this refresh
        // may have waited for).
        if (!token || token.revokedAt) return { ok: false as const };
        const now = new Date();
        if (token.rotatedAt) {
          // Reuse of a spent token: whoever holds the family's live token may be a thief.
          await em.nativeUpdate(
            RefreshToken,
            { familyId: token.familyId, revokedAt: null },
            { revokedAt: now },
          );
          log.warn(
            { familyId: token.familyId, userId: token.userId },
            "refresh token reuse; family revoked",
          );
          return { ok: false as const };
        }
        if (token.expiresAt <= now || !user || user.disabled) return { ok: false as const };
        token.rotatedAt = now;
        return { ok: true as const, tokens: await issue(em, user, token.familyId) };
      });
      if (!outcome.ok) throw badRefreshToken();
      return outcome.tokens;
    },

    async logout(req) {
      if (req.refreshToken === "")
        throw new ConnectError("refresh_token is required", Code.InvalidArgument);
      const token = await db
        .fork()
        .findOne(RefreshToken, { tokenHash: tokenHash(req.refreshToken) });
      // Logging out twice, or with an unknown token, is not an error: the session is over.
      if (token) {
        await db.fork().transactional(async (em) => {
          // A refresh of the family under way records its new token first.
          await lockAccountForUpdate(em, token.userId);
          await em.nativeUpdate(
            RefreshToken,
            { familyId: token.familyId, revokedAt: null },
            { revokedAt: new Date() },
          );
        });
      }
      return {};
    },

    async changePassword(req, ctx) {
      const { userId } = requireIdentity(ctx);
      checkPassword(req.newPassword);
      const confirmed = await passwords.confirmCaller(userId, req.currentPassword);
      const passwordHash = await hashPassword(req.newPassword);
      await revocations.revoking(async (em, revoke) => {
        const user = await em.findOne(
          User,
          { id: userId },
          { lockMode: LockMode.PESSIMISTIC_WRITE },
        );
        if (user?.passwordHash !== confirmed.passwordHash) throw wrongPassword();
        user.passwordHash = passwordHash;
        user.updatedAt = new Date();
        await revoke(userId);
      });
      return {};
    },
  };
}
