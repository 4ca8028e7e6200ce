import { Code, ConnectError, createContextKey, type HandlerContext } from "@connectrpc/connect";

/** The authenticated caller of an RPC, taken from a verified access token. */
export interface Identity {
  /** The token's "sub": the user id. */
  readonly userId: string;
  readonly roles: readonly string[];
  readonly email: string;
  /** The token's "jti", for audit logs and revocation lists. */
  readonly tokenId: string;
}

/** Context key under which the auth interceptor stores the caller's identity. */
export const identityKey = createContextKey<Identity | undefined>(undefined, {
  description: "protomesh caller identity",
});

/** The caller's identity, or undefined when the call carried no valid token (public RPCs). */
export function identityOf(ctx: HandlerContext): Identity | undefined {
  return ctx.values.get(identityKey);
}

/** The caller's identity; throws Unauthenticated when there is none. */
export function requireIdentity(ctx: HandlerContext): Identity {
  const identity = identityOf(ctx);
  if (identity === undefined) {
    throw new ConnectError("missing bearer token", Code.Unauthenticated);
  }
  return identity;
}
