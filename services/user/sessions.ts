import { randomUUID } from "node:crypto";
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import { LockMode } from "@mikro-orm/core";
import type { UserService } from "../../gen/protomesh/user/v1/user_pb.ts";
import type { Database } from "../../kit/db/database.ts";
import type { Log } from "../../kit/log.ts";
import type { UserConfig } from "./config.ts";
import { userToProto } from "./convert.ts";
import { RefreshToken, User, type UserRow } from "./entities.ts";
import type { SigningKeys } from "./keys.ts";
import { decoyHash, verifyPassword } from "./passwords.ts";
import { newOpaqueToken, rolesOf, signAccessToken, type TokenPolicy, tokenHash } from "./tokens.ts";
import { normalizeEmail } from "./validation.ts";

/** What the session RPCs need. */
export interface SessionDeps {
  readonly db: Database;
  readonly keys: SigningKeys;
  readonly config: UserConfig;
  readonly log: Log;
}

type SessionRpcs = Pick<ServiceImpl<typeof UserService>, "login" | "refresh" | "logout">;

const wrongCredentials = () => new ConnectError("invalid email or password", Code.Unauthenticated);
const unverifiedEmail = () =>
  new ConnectError(
    "verify your email address first: follow the verification mail sent at registration",
    Code.FailedPrecondition,
  );
const badRefreshToken = () =>
  new ConnectError("invalid or expired refresh token", Code.Unauthenticated);

/**
 * Login, Refresh and Logout. Login refuses an account whose email is not verified yet, unless
 * LOGIN_REQUIRE_VERIFIED_EMAIL is off. Refresh tokens rotate on every use; presenting a
 * rotated-out one is taken as theft and revokes its whole family (RFC 9700 §4.14.2).
 */
export function createSessionRpcs({ db, keys, config, log }: SessionDeps): SessionRpcs {
  const policy: TokenPolicy = {
    issuer: config.JWT_ISSUER,
    audience: config.JWT_AUDIENCE,
    accessTtlSec: config.ACCESS_TOKEN_TTL_S,
    refreshTtlSec: config.REFRESH_TOKEN_TTL_S,
  };

  /** Issues an access token and a refresh token in `familyId`, storing the latter's hash. */
  async function issue(user: UserRow, familyId: string, em = db.fork()) {
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
    });
    return { accessToken, refreshToken, expiresIn: policy.accessTtlSec, tokenType: "Bearer" };
  }

  /**
   * Counts a login attempt for an address before its password is checked, atomically, so that
   * concurrent attempts cannot all slip under the limit. Refuses a locked address, and locks
   * it when the attempts since the last success exceed the limit.
   */
  async function admitAttempt(email: string): Promise<void> {
    const em = db.fork();
    const [row] = await em.execute<{ failures: number; locked_until: Date | string | null }[]>(
      `insert into login_throttle (email, failures) values (?, 1)
       on conflict (email) do update set failures = login_throttle.failures + 1
       returning failures, locked_until`,
      [email],
    );
    const now = Date.now();
    let lockedUntil = row?.locked_until ? new Date(row.locked_until).getTime() : 0;
    if (lockedUntil <= now && (row?.failures ?? 0) > config.LOGIN_MAX_FAILURES) {
      lockedUntil = now + config.LOGIN_LOCK_S * 1000;
      await em.execute("update login_throttle set failures = 0, locked_until = ? where email = ?", [
        new Date(lockedUntil),
        email,
      ]);
      log.warn({ email }, "login locked after repeated failures");
    }
    if (lockedUntil > now) {
      // Said for any address, registered or not, so it reveals nothing about accounts.
      const wait = Math.ceil((lockedUntil - now) / 1000);
      throw new ConnectError(
        `too many failed logins; try again in ${wait} s`,
        Code.ResourceExhausted,
      );
    }
  }

  return {
    async login(req) {
      const email = normalizeEmail(req.email);
      await admitAttempt(email);
      const em = db.fork();
      const user = await em.findOne(User, { email });
      // An unknown address is checked against a decoy hash, so both failures take as long.
      const matches = await verifyPassword(user?.passwordHash ?? decoyHash, req.password);
      // A failure stays counted; a success clears the address's count.
      if (!user || !matches) throw wrongCredentials();
      await em.execute("delete from login_throttle where email = ?", [email]);
      // Checked after the password, so only the account's owner learns that it exists.
      if (config.LOGIN_REQUIRE_VERIFIED_EMAIL && !user.emailVerified) throw unverifiedEmail();
      return { ...(await issue(user, randomUUID())), user: userToProto(user) };
    },

    async refresh(req) {
      if (req.refreshToken === "")
        throw new ConnectError("refresh_token is required", Code.InvalidArgument);
      const hash = tokenHash(req.refreshToken);
      const outcome = await db.fork().transactional(async (em) => {
        const token = await em.findOne(
          RefreshToken,
          { tokenHash: hash },
          { lockMode: LockMode.PESSIMISTIC_WRITE },
        );
        if (!token) return { ok: false as const };
        const now = new Date();
        if (token.rotatedAt || token.revokedAt) {
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
        if (token.expiresAt <= now) return { ok: false as const };
        const user = await em.findOne(User, { id: token.userId });
        if (!user) return { ok: false as const };
        token.rotatedAt = now;
        return { ok: true as const, tokens: await issue(user, token.familyId, em) };
      });
      if (!outcome.ok) throw badRefreshToken();
      return outcome.tokens;
    },

    async logout(req) {
      if (req.refreshToken === "")
        throw new ConnectError("refresh_token is required", Code.InvalidArgument);
      const em = db.fork();
      const token = await em.findOne(RefreshToken, { tokenHash: tokenHash(req.refreshToken) });
      // Logging out twice, or with an unknown token, is not an error: the session is over.
      if (token) {
        await em.nativeUpdate(
          RefreshToken,
          { familyId: token.familyId, revokedAt: null },
          { revokedAt: new Date() },
        );
      }
      return {};
    },
  };
}
