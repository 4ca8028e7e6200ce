import { createHash, randomBytes, randomUUID } from "node:crypto";
import { SignJWT } from "jose";
import type { SigningKeys } from "./keys.ts";

/** How long the tokens of a session live, and who they are for. */
export interface TokenPolicy {
  readonly issuer: string;
  readonly audience: string;
  readonly accessTtlSec: number;
  readonly refreshTtlSec: number;
}

/** The claims of an access token that say who the caller is. */
export interface Subject {
  readonly userId: string;
  readonly email: string;
  readonly roles: readonly string[];
}

/** What an access token is signed for: the subject, and when it counts as issued. */
export interface AccessGrant extends Subject {
  /**
   * When the token counts as issued, in milliseconds since the epoch. "iat" carries it to the
   * millisecond (RFC 7519 §2 lets a NumericDate have a fraction), so that a revocation can tell
   * a token issued just before it from one issued just after.
   */
  readonly issuedAtMs: number;
}

/** Signs a short-lived access token (JWT, RFC 9068 shape) with the current key. */
export async function signAccessToken(
  keys: SigningKeys,
  policy: TokenPolicy,
  subject: AccessGrant,
): Promise<string> {
  const { kid, alg, key } = await keys.current();
  return new SignJWT({ roles: [...subject.roles], email: subject.email })
    .setProtectedHeader({ alg, kid, typ: "JWT" })
    .setIssuer(policy.issuer)
    .setAudience(policy.audience)
    .setSubject(subject.userId)
    .setIssuedAt(subject.issuedAtMs / 1000)
    .setExpirationTime(subject.issuedAtMs / 1000 + policy.accessTtlSec)
    .setJti(randomUUID())
    .sign(key);
}

/** A new opaque secret for a refresh or verification token: 256 random bits, base64url. */
export function newOpaqueToken(): string {
  return randomBytes(32).toString("base64url");
}

/** What is stored of an opaque token: its SHA-256, so a database leak reveals no usable token. */
export function tokenHash(token: string): string {
  return createHash("sha256").update(token).digest("hex");
}

/** The roles a stored role grants, as carried in tokens: an admin is also a member. */
export function rolesOf(role: "member" | "admin"): string[] {
  return role === "admin" ? ["member", "admin"] : ["member"];
}
