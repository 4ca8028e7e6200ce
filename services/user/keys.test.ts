// Signing-key rotation on a test database (PGlite in memory, or a fresh PostgreSQL database):
// the published set is the current key and the one before it, new tokens use the newest once
// the scheduled reload has read them, and tokens signed with a retired key stop verifying.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTokenVerifier, InvalidTokenError } from "../../kit/auth/token-verifier.ts";
import { openTestDatabase, type TestDatabase } from "../../test/support/database.ts";
import { handDrivenSchedule } from "../../test/support/hand-driven-schedule.ts";
import { testLog } from "../../test/support/user-service.ts";
import { userEntities } from "./entities.ts";
import { loadSigningKeys, rotateSigningKey, type SigningKeys } from "./keys.ts";
import { userMigrations } from "./migrations.ts";
import { signAccessToken, type TokenPolicy } from "./tokens.ts";

const policy: TokenPolicy = {
  issuer: "protomesh",
  audience: "protomesh",
  accessTtlSec: 900,
  refreshTtlSec: 3600,
};
const subject = { userId: crypto.randomUUID(), email: "keys@example.com", roles: ["member"] };

let db: TestDatabase;
const schedule = handDrivenSchedule();
let keys: SigningKeys;
/** Rotates the signing key, then lets the reload interval pass. */
async function rotate(): Promise<string> {
  const kid = await rotateSigningKey(db);
  await schedule.elapse();
  return kid;
}

beforeAll(async () => {
  db = await openTestDatabase({ entities: userEntities, migrations: userMigrations, log: testLog });
  keys = await loadSigningKeys(db, { every: schedule.every });
});
afterAll(async () => {
  keys?.close();
  await db?.close();
});

const publishedKids = async (source: SigningKeys = keys) => (await source.jwks()).map((k) => k.kid);

/** Why a token does not verify against `source`, or "valid". */
async function verdict(token: string, source: SigningKeys = keys): Promise<string> {
  try {
    await createTokenVerifier({ keys: source }).verify(token);
    return "valid";
  } catch (err) {
    if (err instanceof InvalidTokenError) return err.reason;
    throw err;
  }
}

describe("signing keys", () => {
  let first = "";
  let firstToken = "";
  let second = "";

  it("start with one Ed25519 key, created on first load", async () => {
    const jwks = await keys.jwks();
    expect(jwks).toHaveLength(1);
    expect(jwks[0]).toMatchObject({ kty: "OKP", crv: "Ed25519", alg: "EdDSA", use: "sig" });
    // Only the public half is published.
    expect(jwks[0]).not.toHaveProperty("d");
    first = (await keys.current()).kid;
    expect(jwks[0]?.kid).toBe(first);
    firstToken = await signAccessToken(keys, policy, { ...subject, issuedAtMs: Date.now() });
    expect(await verdict(firstToken)).toBe("valid");
  });

  it("after a rotation, publish the new key first and the previous one, and sign with the new", async () => {
    second = await rotateSigningKey(db);
    // Until the reload interval has passed, the instance signs with the key it loaded.
    expect((await keys.current()).kid).toBe(first);
    await schedule.elapse();
    expect(await publishedKids()).toEqual([second, first]);
    expect((await keys.current()).kid).toBe(second);
    const token = await signAccessToken(keys, policy, { ...subject, issuedAtMs: Date.now() });
    expect(
      JSON.parse(Buffer.from(token.split(".")[0] ?? "", "base64url").toString()),
    ).toMatchObject({ alg: "EdDSA", kid: second });
    expect(await verdict(token)).toBe("valid");
    // Tokens signed before the rotation keep verifying until they expire.
    expect(await verdict(firstToken)).toBe("valid");
  });

  it("after a second rotation, drop the oldest key: its tokens stop verifying", async () => {
    const third = await rotate();
    expect(await publishedKids()).toEqual([third, second]);
    expect((await keys.current()).kid).toBe(third);
    expect(await keys.getKey(first, "EdDSA")).toBeUndefined();
    expect(await verdict(firstToken)).toBe("unknown_kid");
  });

  it("keep publishing two keys however often they rotate", async () => {
    const fourth = await rotate();
    const [, previous] = await publishedKids();
    expect(await publishedKids()).toEqual([fourth, previous]);
    const fifth = await rotate();
    expect(await publishedKids()).toEqual([fifth, fourth]);
  });

  it("hand out a key only for the algorithm it was published for", async () => {
    const { kid } = await keys.current();
    expect(await keys.getKey(kid, "EdDSA")).toBeDefined();
    expect(await keys.getKey(kid, "ES256")).toBeUndefined();
    expect(await keys.getKey("no-such-kid", "EdDSA")).toBeUndefined();
  });

  it("are known to every instance as soon as any instance signs with them", async () => {
    // An instance whose reload interval has not passed yet.
    const stale = await loadSigningKeys(db, { every: handDrivenSchedule().every });
    try {
      await rotate();
      const token = await signAccessToken(keys, policy, { ...subject, issuedAtMs: Date.now() });
      expect(await verdict(token, stale)).toBe("valid");
    } finally {
      stale.close();
    }
  });
});
