import { type CryptoKey, importJWK, type JWK } from "jose";
import type { Log } from "../log.ts";

/** Finds the public key that verifies tokens signed with `alg` under key id `kid`. */
export interface KeySource {
  /** The key, or undefined when no key has that kid or the key is not for that algorithm. */
  getKey(kid: string, alg: string): Promise<CryptoKey | undefined>;
}

/**
 * A public JWK as jose exports it or as the generated `Jwk` message carries it (where an empty
 * string means absent), so a GetJwksResponse can be passed as is.
 */
export interface JwkLike {
  readonly kty?: string;
  readonly crv?: string;
  readonly x?: string;
  readonly y?: string;
  readonly kid?: string;
  readonly alg?: string;
  readonly use?: string;
  readonly key_ops?: readonly string[];
}

/** A JSON Web Key Set (RFC 7517 §5). */
export interface JwkSetLike {
  readonly keys: readonly JwkLike[];
}

/** Where the key sources report keys they skip and fetches that fail. */
export type KeySourceLog = Pick<Log, "warn">;

/** A kind of key this toolkit verifies with: its type, curve and the one algorithm it serves. */
interface KeyProfile {
  readonly kty: "OKP" | "EC";
  readonly crv: string;
  readonly alg: string;
}

const profiles: readonly KeyProfile[] = [
  { kty: "OKP", crv: "Ed25519", alg: "EdDSA" },
  { kty: "EC", crv: "P-256", alg: "ES256" },
];

const present = (value: string | undefined): value is string => value !== undefined && value !== "";

/** The profile a public JWK fits, or undefined when it is unsupported or not for signatures. */
function profileOf(jwk: JwkLike): KeyProfile | undefined {
  const profile = profiles.find((p) => p.kty === jwk.kty && p.crv === jwk.crv);
  if (profile === undefined) return undefined;
  // RFC 8725 §3.1: a key is used with one algorithm only; a published "alg" (RFC 7517 §4.4)
  // that disagrees with the key type means the set is wrong, so the key is not used at all.
  if (present(jwk.alg) && jwk.alg !== profile.alg) return undefined;
  // RFC 7517 §4.2-4.3: a key published for encryption must not verify signatures.
  if (present(jwk.use) && jwk.use !== "sig") return undefined;
  if (jwk.key_ops !== undefined && jwk.key_ops.length > 0 && !jwk.key_ops.includes("verify")) {
    return undefined;
  }
  return profile;
}

interface KeyEntry {
  readonly alg: string;
  readonly key: CryptoKey;
}

/** Imports the usable keys of a set by kid; keys that cannot be used are skipped and logged. */
async function importKeySet(
  jwks: JwkSetLike,
  log: KeySourceLog | undefined,
): Promise<Map<string, KeyEntry>> {
  const keys = new Map<string, KeyEntry>();
  for (const jwk of jwks.keys) {
    const kid = jwk.kid;
    const profile = profileOf(jwk);
    if (!present(kid) || profile === undefined || !present(jwk.x)) {
      log?.warn({ kid, kty: jwk.kty, crv: jwk.crv, alg: jwk.alg }, "skipping unusable JWK");
      continue;
    }
    // RFC 7517 §4.5: kids are meant to be unique in a set; with two candidates there is no
    // telling which one the issuer meant, so the first one wins and the clash is reported.
    if (keys.has(kid)) {
      log?.warn({ kid }, "skipping JWK with a duplicate kid");
      continue;
    }
    // Only the public members are imported: a private JWK handed to a static source by the
    // process that owns it must not turn into a signing key here.
    const pub: JWK & { kty: KeyProfile["kty"] } = { kty: profile.kty, crv: profile.crv, x: jwk.x };
    if (present(jwk.y)) pub.y = jwk.y;
    try {
      keys.set(kid, { alg: profile.alg, key: await importJWK(pub, profile.alg) });
    } catch (err) {
      log?.warn({ err, kid }, "skipping JWK that does not import");
    }
  }
  return keys;
}

/** Options of a static key source. */
export interface StaticKeySourceOptions {
  readonly log?: KeySourceLog;
}

/** A key source over a fixed key set, for a process that holds the keys itself. */
export function createStaticKeySource(
  jwks: JwkSetLike,
  options: StaticKeySourceOptions = {},
): KeySource {
  let keys: Promise<Map<string, KeyEntry>> | undefined;
  return {
    async getKey(kid, alg) {
      keys ??= importKeySet(jwks, options.log);
      const entry = (await keys).get(kid);
      return entry?.alg === alg ? entry.key : undefined;
    },
  };
}

/** Options of a key source that fetches the key set from the issuer. */
export interface RemoteKeySourceOptions {
  /** Fetches the issuer's key set, such as UserService.GetJwks; should honour the signal. */
  readonly fetchJwks: (signal: AbortSignal) => Promise<JwkSetLike>;
  /** How long a fetched set is used before it is refreshed in the background. */
  readonly cacheMs?: number;
  /** Least time between two fetches, however many unknown kids arrive. */
  readonly minRefetchMs?: number;
  /** How long a fetch may take before it counts as failed. */
  readonly fetchTimeoutMs?: number;
  readonly log?: KeySourceLog;
  /** The clock, in milliseconds; for tests. */
  readonly now?: () => number;
}

/**
 * A key source that caches the issuer's key set by kid. An unknown kid refetches the set (at
 * most once per minRefetchMs, concurrent callers sharing one fetch); a failed fetch keeps the
 * last known keys.
 */
export function createRemoteKeySource(options: RemoteKeySourceOptions): KeySource {
  const {
    fetchJwks,
    cacheMs = 5 * 60_000,
    minRefetchMs = 10_000,
    fetchTimeoutMs = 5_000,
    log,
    now = Date.now,
  } = options;
  let keys = new Map<string, KeyEntry>();
  let fetchedAt = Number.NEGATIVE_INFINITY;
  let attemptedAt = Number.NEGATIVE_INFINITY;
  let inFlight: Promise<void> | undefined;

  async function load(): Promise<void> {
    const abort = new AbortController();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        const err = new Error(`JWKS fetch took longer than ${fetchTimeoutMs} ms`);
        abort.abort(err);
        reject(err);
      }, fetchTimeoutMs);
      // A pending fetch must not keep a process that is shutting down alive.
      timer.unref();
    });
    try {
      // The race bounds a fetcher that ignores its signal: a hung fetch must not hold every
      // later refresh back.
      const jwks = await Promise.race([fetchJwks(abort.signal), timeout]);
      keys = await importKeySet(jwks, log);
      fetchedAt = now();
    } catch (err) {
      log?.warn({ err, knownKeys: keys.size }, "JWKS fetch failed; keeping the last known keys");
    } finally {
      clearTimeout(timer);
    }
  }

  /** Starts a fetch unless one is running (then joins it) or the last one was too recent. */
  function refresh(): Promise<void> {
    if (inFlight !== undefined) return inFlight;
    if (now() - attemptedAt < minRefetchMs) return Promise.resolve();
    attemptedAt = now();
    inFlight = load().finally(() => {
      inFlight = undefined;
    });
    return inFlight;
  }

  return {
    async getKey(kid, alg) {
      if (keys.has(kid)) {
        // A known kid is answered from the cache at once; an expired cache is refreshed in the
        // background. refresh() never rejects, so nothing is left unhandled.
        if (now() - fetchedAt >= cacheMs) void refresh();
      } else {
        // An unknown kid may be a key just rotated in (or a forged kid: hence the rate limit).
        await refresh();
      }
      const entry = keys.get(kid);
      return entry?.alg === alg ? entry.key : undefined;
    },
  };
}
