import { defineEntity, type InferEntity, LockMode, p } from "@mikro-orm/core";
import type { SqlEntityManager } from "@mikro-orm/postgresql";
import { jobEntities } from "../../kit/jobs/outbox.ts";

/** An account. The email is stored trimmed and lower-cased, unique. */
export const User = defineEntity({
  name: "User",
  tableName: "app_user",
  properties: {
    id: p.uuid().primary(),
    email: p.text().unique(),
    passwordHash: p.text(),
    displayName: p.text(),
    role: p.enum(["member", "admin"] as const),
    emailVerified: p.boolean(),
    /** A disabled account cannot log in or refresh; DisableUser and EnableUser set it. */
    disabled: p.boolean(),
    createdAt: p.datetime(),
    updatedAt: p.datetime(),
  },
});

/** An account as loaded from the database. */
export type UserRow = InferEntity<typeof User>;

/**
 * Loads an account and holds its row until the transaction ends, shared: logins and refreshes
 * of the account go on side by side, while a revocation (which locks it for update) waits for
 * them, and they for it.
 */
export function lockedAccount(em: SqlEntityManager, id: string): Promise<UserRow | null> {
  return em.findOne(User, { id }, { lockMode: LockMode.PESSIMISTIC_READ });
}

/**
 * Locks an account's row for update until the transaction ends: the logins and refreshes of the
 * account under way finish first, and the next ones wait.
 */
export async function lockAccountForUpdate(em: SqlEntityManager, id: string): Promise<void> {
  await em.execute("select id from app_user where id = ? for update", [id]);
}

/**
 * A refresh token, stored as the SHA-256 of its value. Tokens of one login form a family;
 * each use rotates the token, and a rotated-out token presented again revokes the family.
 */
export const RefreshToken = defineEntity({
  name: "RefreshToken",
  tableName: "refresh_token",
  properties: {
    id: p.uuid().primary(),
    tokenHash: p.text().unique(),
    familyId: p.uuid().index(),
    userId: p.uuid(),
    createdAt: p.datetime(),
    expiresAt: p.datetime(),
    rotatedAt: p.datetime().nullable(),
    revokedAt: p.datetime().nullable(),
  },
});

/** A single-use email verification token, stored as the SHA-256 of its value. */
export const VerificationToken = defineEntity({
  name: "VerificationToken",
  tableName: "verification_token",
  properties: {
    tokenHash: p.text().primary(),
    userId: p.uuid(),
    expiresAt: p.datetime(),
    usedAt: p.datetime().nullable(),
  },
});

/** A key that signs access tokens; the newest signs, older ones stay published until retired. */
export const SigningKey = defineEntity({
  name: "SigningKey",
  tableName: "signing_key",
  properties: {
    kid: p.text().primary(),
    alg: p.text(),
    privateJwk: p.json<Record<string, unknown>>(),
    publicJwk: p.json<Record<string, unknown>>(),
    createdAt: p.datetime(),
    retiredAt: p.datetime().nullable(),
  },
});

/**
 * Failed logins per email address, whether or not an account has it, so that throttling
 * does not reveal which addresses exist.
 */
export const LoginThrottle = defineEntity({
  name: "LoginThrottle",
  tableName: "login_throttle",
  properties: {
    email: p.text().primary(),
    failures: p.integer(),
    lockedUntil: p.datetime().nullable(),
  },
});

/**
 * Access tokens of an account issued before `revokedBefore` are refused by every service. Kept
 * as long as such a token could otherwise be valid, and after the account itself is deleted.
 */
export const TokenRevocation = defineEntity({
  name: "TokenRevocation",
  tableName: "token_revocation",
  properties: {
    userId: p.uuid().primary(),
    revokedBefore: p.datetime(),
  },
});

/** Every entity of the user service, with the toolkit's outbox. */
export const userEntities = [
  ...jobEntities,
  User,
  RefreshToken,
  VerificationToken,
  SigningKey,
  LoginThrottle,
  TokenRevocation,
];
