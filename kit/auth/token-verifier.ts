import { decodeProtectedHeader, errors, type JWTPayload, jwtVerify } from "jose";
import type { Identity } from "./identity.ts";
import type { KeySource } from "./jwks-source.ts";
import type { RevocationList } from "./revocations.ts";

/** Why a token was refused; for the server log only, never for the caller. */
export type InvalidTokenReason =
  | "malformed"
  | "disallowed_alg"
  | "unknown_kid"
  | "bad_signature"
  | "expired"
  | "not_yet_valid"
  | "wrong_issuer"
  | "wrong_audience"
  | "wrong_type"
  | "invalid_claims"
  | "revoked";

/** A token that does not prove an identity, with the reason. */
export class InvalidTokenError extends Error {
  override readonly name = "InvalidTokenError";
  readonly reason: InvalidTokenReason;

  constructor(reason: InvalidTokenReason, message: string, options?: ErrorOptions) {
    super(message, options);
    this.reason = reason;
  }
}

/** The signature algorithms an access token may use: Ed25519, and P-256 for key rotation. */
export type TokenAlgorithm = "EdDSA" | "ES256";

/** The clock skew a verifier allows by default, in seconds. */
export const defaultClockSkewSec = 30;

/** What a verifier accepts; issuer and audience default to "protomesh", the skew to 30 s. */
export interface TokenVerifierOptions {
  readonly keys: KeySource;
  readonly issuer?: string;
  readonly audience?: string;
  readonly clockSkewSec?: number;
  /** Allow-list of header "alg" values; by default both TokenAlgorithms. */
  readonly algorithms?: readonly TokenAlgorithm[];
  /** Accounts whose earlier tokens are refused; none by default. */
  readonly revocations?: RevocationList;
  /** The clock; for tests. */
  readonly now?: () => Date;
}

/** Verifies access tokens and turns them into identities. */
export interface TokenVerifier {
  /** The identity a token proves; throws InvalidTokenError when it proves none. */
  verify(token: string): Promise<Identity>;
}

// Access tokens are a few hundred bytes; anything far larger is refused before any parsing.
const maxTokenLength = 8192;

/** Creates a verifier of the JWS compact access tokens the user service issues. */
export function createTokenVerifier(options: TokenVerifierOptions): TokenVerifier {
  const {
    keys,
    issuer = "protomesh",
    audience = "protomesh",
    clockSkewSec = defaultClockSkewSec,
    algorithms = ["EdDSA", "ES256"],
    revocations,
    now = () => new Date(),
  } = options;
  const allowed: ReadonlySet<string> = new Set(algorithms);

  return {
    async verify(token) {
      if (token.length > maxTokenLength || token.split(".").length !== 3) {
        throw new InvalidTokenError("malformed", "not a JWS compact serialization");
      }
      let header: ReturnType<typeof decodeProtectedHeader>;
      try {
        header = decodeProtectedHeader(token);
      } catch (err) {
        throw new InvalidTokenError("malformed", "unreadable protected header", { cause: err });
      }
      const { alg, kid } = header;
      // RFC 8725 §2.1, §3.1: the header's "alg" is attacker-chosen; it only selects among the
      // allow-list, which excludes "none" and every HMAC algorithm (no public key can be
      // turned into an HMAC secret). Checked before the key lookup so that no such token can
      // trigger a key fetch.
      if (alg === undefined || !allowed.has(alg)) {
        throw new InvalidTokenError("disallowed_alg", `algorithm ${String(alg)} is not allowed`);
      }
      if (kid === undefined || kid === "") {
        throw new InvalidTokenError("unknown_kid", "token has no kid");
      }
      // The key source hands out a key only for the one algorithm it was published for.
      const key = await keys.getKey(kid, alg);
      if (key === undefined) {
        throw new InvalidTokenError("unknown_kid", `no ${alg} key with kid ${kid}`);
      }
      const currentDate = now();
      let payload: JWTPayload;
      try {
        ({ payload } = await jwtVerify(token, key, {
          algorithms: [alg],
          issuer,
          audience,
          clockTolerance: clockSkewSec,
          currentDate,
          // RFC 8725 §3.11: explicit typing, so that another kind of JWS by the same issuer
          // cannot pass for an access token.
          typ: "JWT",
          // RFC 8725 §3.10 and RFC 7519 §4.1.4: a token without "exp" would never expire.
          requiredClaims: ["exp", "iat", "sub", "jti"],
        }));
      } catch (err) {
        throw fromJoseError(err);
      }
      // RFC 7519 §4.1.6 lets "iat" be anything, but a token issued in the future (beyond the
      // skew) comes from a wrong clock or a forger: treated like a future "nbf".
      const iat = payload.iat ?? 0;
      if (iat > currentDate.getTime() / 1000 + clockSkewSec) {
        throw new InvalidTokenError("not_yet_valid", '"iat" is in the future');
      }
      const identity = identityFrom(payload);
      if (await revocations?.isRevoked(identity.userId, iat)) {
        throw new InvalidTokenError("revoked", "the account's earlier tokens were revoked");
      }
      return identity;
    },
  };
}

function identityFrom(payload: JWTPayload): Identity {
  const { sub, jti, roles, email } = payload;
  if (typeof sub !== "string" || sub === "") {
    throw new InvalidTokenError("invalid_claims", '"sub" is missing or empty');
  }
  if (typeof jti !== "string" || jti === "") {
    throw new InvalidTokenError("invalid_claims", '"jti" is missing or empty');
  }
  if (!Array.isArray(roles) || !roles.every((role) => typeof role === "string")) {
    throw new InvalidTokenError("invalid_claims", '"roles" is missing or not a list of strings');
  }
  if (typeof email !== "string") {
    throw new InvalidTokenError("invalid_claims", '"email" is missing or not a string');
  }
  return Object.freeze({
    userId: sub,
    roles: Object.freeze([...roles]),
    email,
    tokenId: jti,
  });
}

const claimReasons: Readonly<Record<string, InvalidTokenReason>> = {
  nbf: "not_yet_valid",
  iss: "wrong_issuer",
  aud: "wrong_audience",
  typ: "wrong_type",
};

/** Maps jose's verification failures to reasons; anything else is a bug and passes through. */
function fromJoseError(err: unknown): unknown {
  const fail = (reason: InvalidTokenReason, message: string) =>
    new InvalidTokenError(reason, message, { cause: err });
  if (err instanceof errors.JWTExpired) return fail("expired", err.message);
  if (err instanceof errors.JWTClaimValidationFailed) {
    return fail(claimReasons[err.claim] ?? "invalid_claims", err.message);
  }
  if (err instanceof errors.JWSSignatureVerificationFailed)
    return fail("bad_signature", err.message);
  if (err instanceof errors.JOSEAlgNotAllowed) return fail("disallowed_alg", err.message);
  if (err instanceof errors.JOSEError) return fail("malformed", err.message);
  return err;
}
