import {
  type CryptoKey,
  calculateJwkThumbprint,
  exportJWK,
  generateKeyPair,
  importJWK,
  type JWK,
} from "jose";
import type { Database } from "../../kit/db/database.ts";
import type { Log } from "../../kit/log.ts";
import { SigningKey } from "./entities.ts";

/** The algorithm new signing keys use: EdDSA over Ed25519 (RFC 8037). */
const algorithm = "EdDSA";

/** A key that can sign, with its id. */
export interface ActiveKey {
  readonly kid: string;
  readonly alg: string;
  readonly key: CryptoKey;
}

/**
 * The signing keys of the user service, read from its database and reloaded on a schedule of
 * their own: signing and publishing use the last loaded keys and never touch the database, so
 * they are safe inside a caller's transaction.
 */
export interface SigningKeys {
  /** The newest key: the one new tokens are signed with. */
  current(): Promise<ActiveKey>;
  /** The public half of every published key (the current one and, after a rotation, the previous one). */
  jwks(): Promise<JWK[]>;
  /**
   * The public key with this id, if it is published and of this algorithm. An unknown id
   * re-reads the database first (at most once a second), so never call it inside a transaction.
   */
  getKey(kid: string, alg: string): Promise<CryptoKey | undefined>;
  /** Stops the scheduled reloads. */
  close(): void;
}

/** Runs `task` every `ms` milliseconds until the returned function is called. */
export type Every = (ms: number, task: () => Promise<void>) => () => void;

/** How the signing keys are reloaded. */
export interface SigningKeyOptions {
  /** How often the keys are re-read, so every instance picks up a rotation. */
  readonly reloadMs?: number;
  /** What runs the reloads: a timer by default; a test hands in one it drives itself. */
  readonly every?: Every;
  /** The clock, in milliseconds, that spaces re-reads forced by unknown key ids. */
  readonly now?: () => number;
  readonly log?: Pick<Log, "warn">;
}

interface LoadedKey {
  readonly kid: string;
  readonly alg: string;
  readonly publicJwk: JWK;
  readonly publicKey: CryptoKey;
  readonly privateKey: CryptoKey;
}

/** A timer that does not keep a process alive on its own. */
const everyWithTimer: Every = (ms, task) => {
  const timer = setInterval(() => void task(), ms);
  timer.unref();
  return () => clearInterval(timer);
};

/** Reads the published keys, newest first, creating the first one when there is none. */
async function readKeys(db: Database): Promise<LoadedKey[]> {
  const find = () =>
    db.fork().find(SigningKey, { retiredAt: null }, { orderBy: { createdAt: "desc" } });
  let rows = await find();
  if (rows.length === 0) {
    await rotateSigningKey(db);
    rows = await find();
  }
  return Promise.all(
    rows.map(async (row) => ({
      kid: row.kid,
      alg: row.alg,
      publicJwk: row.publicJwk as JWK,
      publicKey: (await importJWK(row.publicJwk as JWK, row.alg)) as CryptoKey,
      privateKey: (await importJWK(row.privateJwk as JWK, row.alg)) as CryptoKey,
    })),
  );
}

/**
 * Loads the published keys, creating the first one when there is none, and re-reads them every
 * `reloadMs` (a minute by default), so every instance picks up a rotation made by
 * `npm run user:rotate-keys`. A failed reload keeps the last loaded keys.
 */
export async function loadSigningKeys(
  db: Database,
  options: SigningKeyOptions = {},
): Promise<SigningKeys> {
  const { reloadMs = 60_000, every = everyWithTimer, now = () => performance.now(), log } = options;
  let loaded = await readKeys(db);
  let inFlight: Promise<void> | undefined;
  let forcedAt = Number.NEGATIVE_INFINITY;
  /** Re-reads the keys, concurrent callers sharing one read; never rejects. */
  const reload = () => {
    inFlight ??= readKeys(db)
      .then(
        (keys) => {
          loaded = keys;
        },
        (err: unknown) => log?.warn({ err }, "signing key reload failed; keeping the loaded keys"),
      )
      .finally(() => {
        inFlight = undefined;
      });
    return inFlight;
  };
  const stop = every(reloadMs, reload);
  return {
    async current() {
      const [newest] = loaded;
      if (!newest) throw new Error("no signing key");
      return { kid: newest.kid, alg: newest.alg, key: newest.privateKey };
    },
    async jwks() {
      return loaded.map((k) => k.publicJwk);
    },
    async getKey(kid, alg) {
      let found = loaded.find((k) => k.kid === kid);
      // Another instance may have rotated and signed with a key this one has not read yet; an
      // unknown kid re-reads at most once per second, so bogus kids cost little.
      if (!found && now() - forcedAt >= 1_000) {
        forcedAt = now();
        await reload();
        found = loaded.find((k) => k.kid === kid);
      }
      return found && found.alg === alg ? found.publicKey : undefined;
    },
    close: stop,
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
