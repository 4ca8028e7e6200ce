import {
  base64url,
  type CryptoKey,
  exportJWK,
  exportSPKI,
  generateKeyPair,
  type JWTHeaderParameters,
  type JWTPayload,
  SignJWT,
} from "jose";
import { describe, expect, it } from "vitest";
import { createStaticKeySource } from "./jwks-source.ts";
import { createTokenVerifier, type InvalidTokenReason } from "./token-verifier.ts";

const ed = await generateKeyPair("EdDSA");
const ec = await generateKeyPair("ES256");
const edJwk = { ...(await exportJWK(ed.publicKey)), kid: "ed-1", alg: "EdDSA", use: "sig" };
const ecJwk = { ...(await exportJWK(ec.publicKey)), kid: "ec-1", alg: "ES256", use: "sig" };
const verifier = createTokenVerifier({ keys: createStaticKeySource({ keys: [edJwk, ecJwk] }) });
const nowSec = () => Math.floor(Date.now() / 1000);

/** Signs a token as the user service does; claims set to undefined are left out. */
function sign(
  claims: Record<string, unknown> = {},
  header: Record<string, unknown> = {},
  key: CryptoKey | Uint8Array = ed.privateKey,
): Promise<string> {
  const payload: JWTPayload = {
    iss: "protomesh",
    aud: "protomesh",
    sub: "user-1",
    iat: nowSec(),
    exp: nowSec() + 900,
    jti: "token-1",
    roles: ["member"],
    email: "ada@example.com",
    ...claims,
  };
  return new SignJWT(payload)
    .setProtectedHeader({ alg: "EdDSA", kid: "ed-1", typ: "JWT", ...header } as JWTHeaderParameters)
    .sign(key);
}

async function reasonOf(token: string): Promise<InvalidTokenReason | "accepted"> {
  try {
    await verifier.verify(token);
    return "accepted";
  } catch (err) {
    if (err instanceof Error && err.name === "InvalidTokenError" && "reason" in err) {
      return err.reason as InvalidTokenReason;
    }
    throw err;
  }
}

const encodeJson = (value: unknown) => base64url.encode(JSON.stringify(value));

describe("token verifier", () => {
  it("accepts a valid EdDSA token and returns the identity", async () => {
    const identity = await verifier.verify(await sign({ roles: ["member", "admin"] }));
    expect(identity).toEqual({
      userId: "user-1",
      roles: ["member", "admin"],
      email: "ada@example.com",
      tokenId: "token-1",
    });
    expect(Object.isFrozen(identity.roles)).toBe(true);
  });

  it("accepts an ES256 token signed with the P-256 key (rotation)", async () => {
    const token = await sign({}, { alg: "ES256", kid: "ec-1" }, ec.privateKey);
    expect(await reasonOf(token)).toBe("accepted");
  });

  it("refuses an expired token, but not within the clock skew", async () => {
    expect(await reasonOf(await sign({ iat: nowSec() - 1000, exp: nowSec() - 60 }))).toBe(
      "expired",
    );
    expect(await reasonOf(await sign({ iat: nowSec() - 1000, exp: nowSec() - 10 }))).toBe(
      "accepted",
    );
  });

  it("refuses a token that is not yet valid (nbf or iat in the future) beyond the skew", async () => {
    expect(await reasonOf(await sign({ nbf: nowSec() + 120 }))).toBe("not_yet_valid");
    expect(await reasonOf(await sign({ iat: nowSec() + 120 }))).toBe("not_yet_valid");
    expect(await reasonOf(await sign({ nbf: nowSec() + 10, iat: nowSec() + 10 }))).toBe("accepted");
  });

  it("refuses a tampered payload that keeps the original signature", async () => {
    const [header, payload, signature] = (await sign()).split(".");
    const claims = JSON.parse(
      new TextDecoder().decode(base64url.decode(payload ?? "")),
    ) as JWTPayload;
    const forged = encodeJson({ ...claims, roles: ["member", "admin"] });
    expect(await reasonOf(`${header}.${forged}.${signature}`)).toBe("bad_signature");
  });

  it("refuses a token signed by another key under a known kid", async () => {
    const other = await generateKeyPair("EdDSA");
    expect(await reasonOf(await sign({}, {}, other.privateKey))).toBe("bad_signature");
    // RFC 8725 §3.10: keys the token brings along (jwk, jku, x5u headers) are never trusted.
    const embedded = { jwk: await exportJWK(other.publicKey), jku: "https://evil.example/jwks" };
    expect(await reasonOf(await sign({}, embedded, other.privateKey))).toBe("bad_signature");
  });

  it('refuses unsigned tokens ("alg": "none", in any spelling)', async () => {
    const payload = (await sign()).split(".")[1];
    for (const alg of ["none", "None", "NONE"]) {
      const header = encodeJson({ alg, kid: "ed-1", typ: "JWT" });
      expect(await reasonOf(`${header}.${payload}.`)).toBe("disallowed_alg");
    }
    expect(await reasonOf(`${encodeJson({ typ: "JWT" })}.${payload}.`)).toBe("disallowed_alg");
  });

  it("refuses HS256 tokens keyed with the public key (algorithm confusion)", async () => {
    const pem = await exportSPKI(ed.publicKey);
    const secrets = [
      new TextEncoder().encode(edJwk.x), // the JWK "x" text
      base64url.decode(edJwk.x ?? ""), // the raw public key bytes
      new TextEncoder().encode(pem), // the SPKI PEM text
      new TextEncoder().encode(JSON.stringify(edJwk)),
    ];
    for (const secret of secrets) {
      for (const alg of ["HS256", "HS384", "HS512"]) {
        expect(await reasonOf(await sign({}, { alg }, secret))).toBe("disallowed_alg");
      }
    }
  });

  it("never uses a key with another algorithm than its own", async () => {
    const keys = createStaticKeySource({ keys: [edJwk, ecJwk] });
    expect(await keys.getKey("ed-1", "HS256")).toBeUndefined();
    expect(await keys.getKey("ed-1", "ES256")).toBeUndefined();
    expect(await keys.getKey("ec-1", "EdDSA")).toBeUndefined();
    // An ES256 token naming the Ed25519 key's kid finds no key.
    const token = await sign({}, { alg: "ES256", kid: "ed-1" }, ec.privateKey);
    expect(await reasonOf(token)).toBe("unknown_kid");
  });

  it("refuses the wrong audience or issuer", async () => {
    expect(await reasonOf(await sign({ aud: "billing" }))).toBe("wrong_audience");
    expect(await reasonOf(await sign({ aud: undefined }))).toBe("wrong_audience");
    expect(await reasonOf(await sign({ aud: ["billing", "protomesh"] }))).toBe("accepted");
    expect(await reasonOf(await sign({ iss: "evil" }))).toBe("wrong_issuer");
    expect(await reasonOf(await sign({ iss: undefined }))).toBe("wrong_issuer");
  });

  it("refuses an unknown or missing kid", async () => {
    expect(await reasonOf(await sign({}, { kid: "ed-2" }))).toBe("unknown_kid");
    expect(await reasonOf(await sign({}, { kid: undefined }))).toBe("unknown_kid");
  });

  it("refuses tokens without the claims an identity needs", async () => {
    for (const claims of [
      { sub: undefined },
      { sub: "" },
      { roles: undefined },
      { roles: "admin" },
      { roles: ["member", 1] },
      { jti: undefined },
      { email: undefined },
      { exp: undefined },
      { iat: undefined },
    ]) {
      expect(await reasonOf(await sign(claims))).toBe("invalid_claims");
    }
  });

  it("refuses another type of JWS from the same issuer", async () => {
    expect(await reasonOf(await sign({}, { typ: "refresh+jwt" }))).toBe("wrong_type");
  });

  it("refuses malformed tokens", async () => {
    const valid = await sign();
    for (const token of ["", "abc", "a.b.c", `${valid}.x`, `${"a".repeat(9000)}.b.c`, "..."]) {
      expect(await reasonOf(token)).toBe("malformed");
    }
  });

  it("uses only the public half of a private JWK it is given", async () => {
    const owned = await generateKeyPair("EdDSA", { extractable: true });
    const privateJwk = { ...(await exportJWK(owned.privateKey)), kid: "ed-1" };
    expect(privateJwk.d).toBeDefined();
    const keys = createStaticKeySource({ keys: [privateJwk] });
    const key = await keys.getKey("ed-1", "EdDSA");
    expect(key?.type).toBe("public");
    const token = await sign({}, {}, owned.privateKey);
    expect(await createTokenVerifier({ keys }).verify(token)).toMatchObject({
      userId: "user-1",
    });
  });

  it("honours the issuer, audience, skew and algorithm options", async () => {
    const strict = createTokenVerifier({
      keys: createStaticKeySource({ keys: [edJwk, ecJwk] }),
      issuer: "mesh",
      audience: "orders",
      clockSkewSec: 0,
      algorithms: ["ES256"],
      now: () => new Date(Date.now() + 5_000),
    });
    const ok = await sign(
      { iss: "mesh", aud: "orders" },
      { alg: "ES256", kid: "ec-1" },
      ec.privateKey,
    );
    await expect(strict.verify(ok)).resolves.toMatchObject({ userId: "user-1" });
    await expect(strict.verify(await sign({ iss: "mesh", aud: "orders" }))).rejects.toMatchObject({
      reason: "disallowed_alg",
    });
    const soon = await sign(
      { iss: "mesh", aud: "orders", exp: nowSec() + 2 },
      { alg: "ES256", kid: "ec-1" },
      ec.privateKey,
    );
    await expect(strict.verify(soon)).rejects.toMatchObject({ reason: "expired" });
  });

  it("refuses a token of a revoked account issued before the revocation, not one issued at it", async () => {
    const revokedBeforeSec = nowSec() - 100;
    const revoking = createTokenVerifier({
      keys: createStaticKeySource({ keys: [edJwk] }),
      revocations: {
        isRevoked: async (userId, iat) => userId === "user-1" && iat < revokedBeforeSec,
      },
    });
    await expect(revoking.verify(await sign({ iat: revokedBeforeSec - 1 }))).rejects.toMatchObject({
      reason: "revoked",
    });
    await expect(revoking.verify(await sign({ iat: revokedBeforeSec }))).resolves.toMatchObject({
      userId: "user-1",
    });
    const other = await sign({ sub: "user-2", iat: revokedBeforeSec - 1 });
    await expect(revoking.verify(other)).resolves.toMatchObject({ userId: "user-2" });
  });
});
