import { hash, verify } from "@node-rs/argon2";

// OWASP Password Storage Cheat Sheet: argon2id with m = 19 MiB, t = 2, p = 1. The package
// declares its algorithm enum as an ambient const enum, which cannot be imported here:
// 2 is its value for Argon2id.
const argon2id = 2;
const parameters = { algorithm: argon2id, memoryCost: 19_456, timeCost: 2, parallelism: 1 };

/** Hashes a password with argon2id (PHC string format, salt included). */
export function hashPassword(password: string): Promise<string> {
  return hash(password, parameters);
}

/** Checks a password against a stored hash. */
export function verifyPassword(stored: string, password: string): Promise<boolean> {
  return verify(stored, password);
}

/**
 * A hash of a random password, verified against when the email is unknown, so that a login
 * for an unknown address takes as long as one with a wrong password (no account enumeration).
 */
export const decoyHash = await hashPassword(crypto.randomUUID());
