import { Code, ConnectError, createClient, createRouterTransport } from "@connectrpc/connect";
import { exportJWK, generateKeyPair, type JWTPayload, SignJWT } from "jose";
import { describe, expect, it, vi } from "vitest";
import { Health } from "../../gen/grpc/health/v1/health_pb.ts";
import { Role, UserService } from "../../gen/protomesh/user/v1/user_pb.ts";
import { createAuthenticator, createAuthInterceptor } from "./auth-interceptor.ts";
import { authPolicyOf } from "./auth-policy.ts";
import { type Identity, identityOf, requireIdentity } from "./identity.ts";
import { createStaticKeySource } from "./jwks-source.ts";
import { createTokenVerifier } from "./token-verifier.ts";

const signer = await generateKeyPair("EdDSA");
const jwk = { ...(await exportJWK(signer.publicKey)), kid: "k1", alg: "EdDSA", use: "sig" };
const verifier = createTokenVerifier({ keys: createStaticKeySource({ keys: [jwk] }) });

function token(roles: string[], claims: JWTPayload = {}): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const payload: JWTPayload = {
    iss: "protomesh",
    aud: "protomesh",
    sub: "user-1",
    iat: now,
    exp: now + 900,
    jti: "token-1",
    roles,
    email: "ada@example.com",
    ...claims,
  };
  return new SignJWT(payload)
    .setProtectedHeader({ alg: "EdDSA", kid: "k1", typ: "JWT" })
    .sign(signer.privateKey);
}

/** A UserService with GetJwks (public), GetMe (authenticated) and ListUsers (admin). */
function harness() {
  const seen: { jwks?: Identity | undefined } = {};
  const log = { info: vi.fn() };
  const transport = createRouterTransport(
    (router) =>
      router.service(UserService, {
        getJwks(_, ctx) {
          seen.jwks = identityOf(ctx);
          return { keys: [] };
        },
        getMe(_, ctx) {
          const { userId, email, roles } = requireIdentity(ctx);
          const role = roles.includes("admin") ? Role.ADMIN : Role.MEMBER;
          return { id: userId, email, role };
        },
        listUsers(_, ctx) {
          return { users: [{ id: requireIdentity(ctx).userId }] };
        },
      }),
    { router: { interceptors: [createAuthInterceptor({ verifier, log })] } },
  );
  return { client: createClient(UserService, transport), seen, log };
}

const bearer = (value: string) => ({ headers: { authorization: `Bearer ${value}` } });

async function codeOf(call: Promise<unknown>): Promise<{ code: Code; message: string }> {
  try {
    await call;
  } catch (err) {
    const { code, rawMessage } = ConnectError.from(err);
    return { code, message: rawMessage };
  }
  throw new Error("the call succeeded");
}

describe("auth interceptor", () => {
  it("serves a public method with or without a token, setting the identity only if valid", async () => {
    const { client, seen } = harness();
    await client.getJwks({});
    expect(seen.jwks).toBeUndefined();
    await client.getJwks({}, bearer("not-a-jwt"));
    expect(seen.jwks).toBeUndefined();
    await client.getJwks({}, bearer(await token(["member"])));
    expect(seen.jwks?.userId).toBe("user-1");
  });

  it("refuses an authenticated method without a bearer token", async () => {
    const { client } = harness();
    const missing = { code: Code.Unauthenticated, message: "missing bearer token" };
    expect(await codeOf(client.getMe({}))).toEqual(missing);
    expect(await codeOf(client.getMe({}, { headers: { authorization: "Basic dTpw" } }))).toEqual(
      missing,
    );
  });

  it("refuses a bad token with a generic message and logs the reason", async () => {
    const { client, log } = harness();
    const invalid = { code: Code.Unauthenticated, message: "invalid or expired access token" };
    const now = Math.floor(Date.now() / 1000);
    const expired = await token(["member"], { exp: now - 3600 });
    expect(await codeOf(client.getMe({}, bearer(expired)))).toEqual(invalid);
    expect(log.info).toHaveBeenLastCalledWith(
      expect.objectContaining({
        method: "/protomesh.user.v1.UserService/GetMe",
        reason: "expired",
      }),
      "refused access token",
    );
    const wrongAudience = await token(["member"], { aud: "billing" });
    expect(await codeOf(client.getMe({}, bearer(wrongAudience)))).toEqual(invalid);
    expect(log.info).toHaveBeenLastCalledWith(
      expect.objectContaining({ reason: "wrong_audience" }),
      "refused access token",
    );
    expect(await codeOf(client.getMe({}, bearer("a.b.c")))).toEqual(invalid);
    expect(await codeOf(client.getMe({}, { headers: { authorization: "Bearer" } }))).toEqual(
      invalid,
    );
    expect(await codeOf(client.getMe({}, bearer("two tokens")))).toEqual(invalid);
  });

  it("passes the identity to the handler", async () => {
    const { client } = harness();
    const me = await client.getMe({}, bearer(await token(["member"])));
    expect(me).toMatchObject({ id: "user-1", email: "ada@example.com", role: Role.MEMBER });
    // RFC 9110 §11.1: the scheme name is case-insensitive.
    const lower = { headers: { authorization: `bearer ${await token(["member"])}` } };
    expect((await client.getMe({}, lower)).id).toBe("user-1");
  });

  it("requires the declared role", async () => {
    const { client } = harness();
    expect(await codeOf(client.listUsers({}, bearer(await token(["member"]))))).toEqual({
      code: Code.PermissionDenied,
      message: "requires role admin",
    });
    expect(await codeOf(client.listUsers({}))).toMatchObject({ code: Code.Unauthenticated });
    const admin = await client.listUsers({}, bearer(await token(["member", "admin"])));
    expect(admin.users.map((u) => u.id)).toEqual(["user-1"]);
  });

  it("answers with an RFC 6750 challenge", async () => {
    const { client } = harness();
    try {
      await client.getMe({}, bearer("a.b.c"));
      expect.unreachable();
    } catch (err) {
      expect(ConnectError.from(err).metadata.get("www-authenticate")).toBe(
        'Bearer error="invalid_token"',
      );
    }
  });
});

describe("authenticator (for the gateway)", () => {
  it("decides from the method and the headers alone", async () => {
    const authenticate = createAuthenticator({ verifier });
    const listUsers = UserService.method.listUsers;
    const admin = new Headers({ authorization: `Bearer ${await token(["member", "admin"])}` });
    await expect(authenticate(listUsers, admin)).resolves.toMatchObject({ userId: "user-1" });
    await expect(authenticate(listUsers, new Headers())).rejects.toMatchObject({
      code: Code.Unauthenticated,
    });
    await expect(authenticate(UserService.method.getJwks, new Headers())).resolves.toBeUndefined();
  });
});

describe("auth policy", () => {
  it("reads the policy from the contract, authenticated by default", () => {
    expect(authPolicyOf(UserService.method.getJwks)).toEqual({ kind: "public" });
    expect(authPolicyOf(UserService.method.login)).toEqual({ kind: "public" });
    expect(authPolicyOf(UserService.method.getMe)).toEqual({ kind: "authenticated" });
    expect(authPolicyOf(UserService.method.setUserRole)).toEqual({ kind: "role", role: "admin" });
    expect(authPolicyOf(Health.method.check)).toEqual({ kind: "authenticated" });
  });
});
