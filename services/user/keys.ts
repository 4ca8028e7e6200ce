import {
  type CryptoKey,
  calculateJwkThumbprint,
  exportJWK,
  generateKeyPair,
  importJWK,
  type JWK,
} from "jose";
import type { Database } from "../../kit/db/database.ts";
import { SigningKey } from "./entities.ts";

/** The algorithm new signing keys use: EdDSA over Ed25519 (RFC 8037). */
const algorithm = "EdDSA";

/** A key that can sign, with its id. */
export interface ActiveKey {
  readonly kid: string;
  readonly alg: string;
  readonly key: CryptoKey;
}

/** The signing keys of the user service, read from its database and refreshed periodically. */
export interface SigningKeys {
  /** The newest key: the one new tokens are signed with. */
  current(): Promise<ActiveKey>;
  /** The public half of every published key (the current one and, after a rotation, the previous one). */
  jwks(): Promise<JWK[]>;
  /** The public key with this id, if it is published and of this algorithm. */
  getKey(kid: string, alg: string): Promise<CryptoKey | undefined>;
}

interface LoadedKey {
  readonly kid: string;
  readonly alg: string;
  readonly publicJwk: JWK;
  readonly publicKey: CryptoKey;
  readonly privateKey: CryptoKey;
}

/**
 * Loads the published keys, creating the first one when there is none. Keys are re-read every
 * `reloadMs`, so every instance picks up a rotation made by `npm run user:rotate-keys`.
 */
export async function loadSigningKeys(db: Database, reloadMs = 60_000): Promise<SigningKeys> {
  let loaded: LoadedKey[] = [];
  let loadedAt = 0;
  let forcedAt = Number.NEGATIVE_INFINITY;
  const refresh = async (force = false) => {
    // An unknown kid forces a re-read, at most once per second, so bogus kids cost little.
    const forced = force && performance.now() - forcedAt >= 1_000;
    if (forced) forcedAt = performance.now();
    if (!forced && loaded.length > 0 && performance.now() - loadedAt < reloadMs) return loaded;
    let rows = await db
      .fork()
      .find(SigningKey, { retiredAt: null }, { orderBy: { createdAt: "desc" } });
    if (rows.length === 0) {
      await rotateSigningKey(db);
      rows = await db
        .fork()
        .find(SigningKey, { retiredAt: null }, { orderBy: { createdAt: "desc" } });
    }
    loaded = await Promise.all(
      rows.map(async (row) => ({
        kid: row.kid,
        alg: row.alg,
        publicJwk: row.publicJwk as JWK,
        publicKey: (await importJWK(row.publicJwk as JWK, row.alg)) as CryptoKey,
        privateKey: (await importJWK(row.privateJwk as JWK, row.alg)) as CryptoKey,
      })),
    );
    loadedAt = performance.now();
    return loaded;
  };
  await refresh();
  return {
    async current() {
      const [newest] = await refresh();
      if (!newest) throw new Error("no signing key");
      return { kid: newest.kid, alg: newest.alg, key: newest.privateKey };
    },
    async jwks() {
      return (await refresh()).map((k) => k.publicJwk);
    },
    async getKey(kid, alg) {
      let found = (await refresh()).find((k) => k.kid === kid);
      // Another instance may have rotated and signed with a key this one has not read yet.
      if (!found) found = (await refresh(true)).find((k) => k.kid === kid);
      return found && found.alg === alg ? found.publicKey : undefined;
    },
  };
}

/**
 * Adds a new signing key and retires every key older than the one it replaces: tokens signed
 * with the previous key stay valid until they expire, older ones stop verifying. Rotate at most
 * once per access-token lifetime. Returns the new key id.
 */
export async function rotateSigningKey(db: Database): Promise<string> {
  const { publicKey, privateKey } = await generateKeyPair(algorithm, {
    crv: "Ed25519",
    extractable: true,
  });
  const publicJwk = await exportJWK(publicKey);
  // RFC 7638 thumbprint: a stable id derived from the key itself.
  const kid = await calculateJwkThumbprint(publicJwk);
  const published = { ...publicJwk, kid, alg: algorithm, use: "sig" };
  const privateJwk = { ...(await exportJWK(privateKey)), kid, alg: algorithm };
  await db.fork().transactional(async (em) => {
    const previous = await em.findOne(
      SigningKey,
      { retiredAt: null },
      { orderBy: { createdAt: "desc" } },
    );
    const now = new Date();
    await em.nativeUpdate(
      SigningKey,
      { retiredAt: null, ...(previous ? { kid: { $ne: previous.kid } } : {}) },
      { retiredAt: now },
    );
    em.create(SigningKey, {
      kid,
      alg: algorithm,
      privateJwk,
      publicJwk: published,
      createdAt: now,
    });
  });
  return kid;
}
