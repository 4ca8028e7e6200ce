import type { DescMethod } from "@bufbuild/protobuf";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { methodPath } from "../call-policy.ts";
import type { Log } from "../log.ts";
import { authPolicyOf } from "./auth-policy.ts";
import { type Identity, identityKey } from "./identity.ts";
import { InvalidTokenError, type TokenVerifier } from "./token-verifier.ts";

/** Where refused tokens are reported, with the reason the caller is not told. */
export type AuthLog = Pick<Log, "info">;

/** What an authenticator needs: a verifier and, optionally, a log for refusals. */
export interface AuthenticatorOptions {
  readonly verifier: TokenVerifier;
  readonly log?: AuthLog;
}

/**
 * Applies a method's auth policy to a request's headers: resolves with the caller's identity
 * (undefined on a public method without a valid token) or throws Unauthenticated/PermissionDenied.
 */
export type Authenticate = (
  method: DescMethod,
  headers: Pick<Headers, "get">,
) => Promise<Identity | undefined>;

// RFC 6750 §2.1: `Bearer` (case-insensitive, RFC 9110 §11.1), whitespace, a token68.
const bearerPattern = /^Bearer +([A-Za-z0-9\-._~+/]+=*) *$/i;

// RFC 6750 §3: tell HTTP clients (through the gateway) which bearer-token problem they have.
const challenge = (error?: string) => ({
  "www-authenticate": error === undefined ? "Bearer" : `Bearer error="${error}"`,
});

/** Creates the check shared by the server interceptor and the gateway (to refuse early). */
export function createAuthenticator(options: AuthenticatorOptions): Authenticate {
  const { verifier, log } = options;
  return async (method, headers) => {
    const policy = authPolicyOf(method);
    const authorization = headers.get("authorization");
    // Another scheme (Basic, say) carries no bearer token: it is treated as none.
    const isBearer = authorization !== null && /^Bearer(?: |$)/i.test(authorization);
    if (!isBearer) {
      if (policy.kind === "public") return undefined;
      throw new ConnectError("missing bearer token", Code.Unauthenticated, challenge());
    }
    let identity: Identity;
    try {
      const token = bearerPattern.exec(authorization)?.[1];
      if (token === undefined) throw new InvalidTokenError("malformed", "malformed bearer token");
      identity = await verifier.verify(token);
    } catch (err) {
      if (!(err instanceof InvalidTokenError)) throw err;
      // A public method ignores a bad token: the caller is served as anonymous.
      if (policy.kind === "public") return undefined;
      // Which check failed goes to the log only: telling the caller would help a forger.
      log?.info(
        { method: methodPath(method), reason: err.reason, detail: err.message },
        "refused access token",
      );
      throw new ConnectError(
        "invalid or expired access token",
        Code.Unauthenticated,
        challenge("invalid_token"),
      );
    }
    if (policy.kind === "role" && (policy.role === "" || !identity.roles.includes(policy.role))) {
      log?.info(
        { method: methodPath(method), userId: identity.userId, role: policy.role },
        "caller lacks the required role",
      );
      throw new ConnectError(
        `requires role ${policy.role}`,
        Code.PermissionDenied,
        challenge("insufficient_scope"),
      );
    }
    return identity;
  };
}

/**
 * Creates the interceptor that enforces each RPC's auth policy and puts the caller's identity
 * where handlers read it with identityOf(ctx). Runs inside the error interceptor.
 */
export function createAuthInterceptor(options: AuthenticatorOptions): Interceptor {
  const authenticate = createAuthenticator(options);
  return (next) => async (req) => {
    const identity = await authenticate(req.method, req.header);
    if (identity !== undefined) req.contextValues.set(identityKey, identity);
    return next(req);
  };
}
