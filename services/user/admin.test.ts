// Access tokens and what they allow, through the network: anonymous and forged callers,
// members and admins (ADMIN_EMAIL), the published keys, and the admin RPCs: ListUsers
// pagination, GetUser's redaction and SetUserRole. The accounts are made once, up front, so
// ListUsers can be checked against exactly them.
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Role, type User } from "../../gen/protomesh/user/v1/user_pb.ts";
import {
  bearer,
  expectCode,
  jwtPart,
  startUserService,
  testPassword,
  type UserServiceUnderTest,
  verificationTokenOf,
  waitForEml,
} from "../../test/support/user-service.ts";

const adminEmail = "admin@example.com";
const memberCount = 7;

let svc: UserServiceUnderTest;
let admin: User;
let adminToken = "";
let members: User[] = [];
/** The ADMIN_EMAIL account as Register returned it, before its address was verified. */
let adminAtRegistration: User | undefined;
/** Access tokens of members[0] and members[1]. */
let memberToken = "";
let otherMemberToken = "";
/** The refresh token of members[1]'s login. */
let targetRefreshToken = "";

beforeAll(async () => {
  // In another case than the registration below: the comparison ignores case.
  // Members log in without verifying their email; the admin verifies to become one.
  svc = await startUserService({
    ADMIN_EMAIL: "Admin@Example.com",
    LOGIN_REQUIRE_VERIFIED_EMAIL: "false",
  });
  const register = (email: string, displayName: string) =>
    svc.connect.register({ email, password: testPassword, displayName });
  [adminAtRegistration, ...members] = await Promise.all([
    register(adminEmail, "The Admin"),
    ...Array.from({ length: memberCount }, (_, i) => register(`member${i}@example.com`, `M${i}`)),
  ]);
  // ADMIN_EMAIL's account becomes admin once it has proved it owns the address.
  const adminMail = await waitForEml(svc.mailDir, adminEmail);
  admin = await svc.connect.verifyEmail({ token: verificationTokenOf(adminMail) });
  const login = (email: string) => svc.connect.login({ email, password: testPassword });
  const [asAdmin, asMember, asOther] = await Promise.all([
    login(adminEmail),
    login("member0@example.com"),
    login("member1@example.com"),
  ]);
  adminToken = asAdmin.accessToken;
  memberToken = asMember.accessToken;
  otherMemberToken = asOther.accessToken;
  targetRefreshToken = asOther.refreshToken;
});
afterAll(async () => {
  await svc?.close();
});

const member = (i: number): User => {
  const found = members[i];
  if (!found) throw new Error(`no member ${i}`);
  return found;
};

describe("an access token", () => {
  it("is required: GetMe without one is Unauthenticated, over Connect and gRPC", async () => {
    await expectCode(svc.connect.getMe({}), Code.Unauthenticated, /missing bearer token/);
    await expectCode(svc.grpc.getMe({}), Code.Unauthenticated, /missing bearer token/);
  });

  it("is refused when tampered with: an edited payload or signature is Unauthenticated", async () => {
    const [header = "", payload = "", signature = ""] = memberToken.split(".");
    const claims = jwtPart(memberToken, 1);
    const promoted = Buffer.from(
      JSON.stringify({ ...claims, roles: ["member", "admin"] }),
    ).toString("base64url");
    // Flip the first character: it carries six whole bits, so the signature really changes.
    const flipped = `${signature.startsWith("A") ? "B" : "A"}${signature.slice(1)}`;
    for (const forged of [
      `${header}.${promoted}.${signature}`,
      `${header}.${payload}.${flipped}`,
      "not-a-token",
    ]) {
      await expectCode(
        svc.connect.getMe({}, bearer(forged)),
        Code.Unauthenticated,
        /invalid or expired access token/,
      );
      await expectCode(
        svc.connect.listUsers({}, bearer(forged)),
        Code.Unauthenticated,
        /invalid or expired access token/,
      );
    }
  });

  it("is signed with EdDSA under a kid that GetJwks publishes, and says who and what", async () => {
    const header = jwtPart(memberToken, 0);
    expect(header).toMatchObject({ alg: "EdDSA", typ: "JWT" });
    // GetJwks is public: no token needed.
    const { keys } = await svc.connect.getJwks({});
    expect(keys.map((k) => k.kid)).toContain(header.kid);
    const key = keys.find((k) => k.kid === header.kid);
    expect(key).toMatchObject({ kty: "OKP", crv: "Ed25519", alg: "EdDSA", use: "sig" });
    expect(key?.x).toMatch(/^[A-Za-z0-9_-]{43}$/);

    const claims = jwtPart(memberToken, 1);
    expect(claims).toMatchObject({
      iss: "protomesh",
      aud: "protomesh",
      sub: member(0).id,
      email: member(0).email,
      roles: ["member"],
    });
    expect(Number(claims.exp) - Number(claims.iat)).toBe(900);
  });
});

describe("roles", () => {
  it("make the ADMIN_EMAIL account an admin once its address is verified", async () => {
    expect(adminAtRegistration?.role).toBe(Role.MEMBER);
    expect(admin.role).toBe(Role.ADMIN);
    const login = await svc.connect.login({ email: adminEmail, password: testPassword });
    expect(login.user?.role).toBe(Role.ADMIN);
    expect(jwtPart(login.accessToken, 1).roles).toEqual(["member", "admin"]);
    expect(members.map((m) => m.role)).toEqual(Array(memberCount).fill(Role.MEMBER));
  });

  it("keep members out of ListUsers and SetUserRole: PermissionDenied", async () => {
    await expectCode(
      svc.connect.listUsers({}, bearer(memberToken)),
      Code.PermissionDenied,
      /requires role admin/,
    );
    await expectCode(
      svc.grpc.setUserRole({ id: member(0).id, role: Role.ADMIN }, bearer(memberToken)),
      Code.PermissionDenied,
      /requires role admin/,
    );
    expect((await svc.connect.getMe({}, bearer(memberToken))).role).toBe(Role.MEMBER);
  });

  it("let an admin promote a member, whose next login carries the admin role", async () => {
    const target = member(1);
    const promoted = await svc.connect.setUserRole(
      { id: target.id, role: Role.ADMIN },
      bearer(adminToken),
    );
    expect(promoted).toMatchObject({ id: target.id, role: Role.ADMIN });
    // Its earlier tokens name the old role: the account signs in again.
    await expectCode(
      svc.connect.getMe({}, bearer(otherMemberToken)),
      Code.Unauthenticated,
      /invalid or expired access token/,
    );
    await expectCode(
      svc.connect.refresh({ refreshToken: targetRefreshToken }),
      Code.Unauthenticated,
      /invalid or expired refresh token/,
    );
    const relogin = await svc.connect.login({ email: target.email, password: testPassword });
    expect(relogin.user?.role).toBe(Role.ADMIN);
    expect(jwtPart(relogin.accessToken, 1).roles).toEqual(["member", "admin"]);
    const list = await svc.connect.listUsers({}, bearer(relogin.accessToken));
    expect(list.users).toHaveLength(memberCount + 1);

    // And back: the demoted member's next login is a member's again.
    await svc.connect.setUserRole({ id: target.id, role: Role.MEMBER }, bearer(adminToken));
    const demoted = await svc.connect.login({ email: target.email, password: testPassword });
    expect(jwtPart(demoted.accessToken, 1).roles).toEqual(["member"]);
  });

  it("end a demoted admin's earlier token at once, so it cannot undo its demotion", async () => {
    const target = member(4);
    await svc.connect.setUserRole({ id: target.id, role: Role.ADMIN }, bearer(adminToken));
    const asAdmin = await svc.connect.login({ email: target.email, password: testPassword });
    expect(jwtPart(asAdmin.accessToken, 1).roles).toEqual(["member", "admin"]);
    await svc.connect.listUsers({}, bearer(asAdmin.accessToken));
    await svc.connect.setUserRole({ id: target.id, role: Role.MEMBER }, bearer(adminToken));

    // The token still says admin, and is still within its lifetime.
    await expectCode(
      svc.connect.listUsers({}, bearer(asAdmin.accessToken)),
      Code.Unauthenticated,
      /invalid or expired access token/,
    );
    await expectCode(
      svc.grpc.setUserRole({ id: target.id, role: Role.ADMIN }, bearer(asAdmin.accessToken)),
      Code.Unauthenticated,
      /invalid or expired access token/,
    );
    expect((await svc.connect.getUser({ id: target.id }, bearer(adminToken))).role).toBe(
      Role.MEMBER,
    );
  });

  it("keep the last admin: it cannot demote itself, and stays admin", async () => {
    await expectCode(
      svc.connect.setUserRole({ id: admin.id, role: Role.MEMBER }, bearer(adminToken)),
      Code.FailedPrecondition,
      /the last admin cannot be demoted; make another account admin first/,
    );
    expect((await svc.connect.getMe({}, bearer(adminToken))).role).toBe(Role.ADMIN);
    await svc.connect.listUsers({}, bearer(adminToken));
  });

  it("refuse a SetUserRole with no role, a malformed id or an unknown one", async () => {
    await expectCode(
      svc.connect.setUserRole({ id: member(2).id, role: Role.UNSPECIFIED }, bearer(adminToken)),
      Code.InvalidArgument,
      /role must be ROLE_MEMBER or ROLE_ADMIN/,
    );
    await expectCode(
      svc.connect.setUserRole({ id: "42", role: Role.ADMIN }, bearer(adminToken)),
      Code.InvalidArgument,
      /id must be a UUID/,
    );
    const unknown = crypto.randomUUID();
    await expectCode(
      svc.connect.setUserRole({ id: unknown, role: Role.ADMIN }, bearer(adminToken)),
      Code.NotFound,
      new RegExp(`user ${unknown} not found`),
    );
  });
});

/** ListUsers' promised order: oldest first, ties broken by id. */
function byAge(a: User, b: User): number {
  const at = (u: User) => (u.createTime ? timestampDate(u.createTime).getTime() : 0);
  return at(a) - at(b) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}

describe("ListUsers", () => {
  it("pages 3 at a time through every account, in a stable order, without duplicates or gaps", async () => {
    const pages: User[][] = [];
    let pageToken = "";
    do {
      const page = await svc.connect.listUsers({ pageSize: 3, pageToken }, bearer(adminToken));
      pages.push(page.users);
      pageToken = page.nextPageToken;
      expect(pages.length, "pagination does not end").toBeLessThan(10);
    } while (pageToken !== "");
    // 7 members and the admin.
    expect(pages.map((p) => p.length)).toEqual([3, 3, 2]);
    const listed = pages.flat();
    const ids = listed.map((u) => u.id);
    expect(new Set(ids).size).toBe(ids.length);
    expect([...ids].sort()).toEqual([admin, ...members].map((u) => u.id).sort());
    expect(listed).toEqual([...listed].sort(byAge));
    // An admin sees every address.
    expect(listed.every((u) => u.email.endsWith("@example.com"))).toBe(true);

    // Asked again, the same pages: the order is stable.
    const whole = await svc.grpc.listUsers({ pageSize: 50 }, bearer(adminToken));
    expect(whole.users.map((u) => u.id)).toEqual(ids);
    expect(whole.nextPageToken).toBe("");
  });

  it("defaults to 50 and clamps a huge page_size (to 200) instead of refusing it", async () => {
    const byDefault = await svc.connect.listUsers({}, bearer(adminToken));
    expect(byDefault.users).toHaveLength(memberCount + 1);
    expect(byDefault.nextPageToken).toBe("");
    // Clamping to 200 only shows past 200 accounts, too many to register here (argon2 each);
    // what shows is that 5000 is served, not refused.
    const huge = await svc.connect.listUsers({ pageSize: 5000 }, bearer(adminToken));
    expect(huge.users).toHaveLength(memberCount + 1);
    expect(huge.nextPageToken).toBe("");
  });

  it("is InvalidArgument for a negative page_size or a tampered page_token", async () => {
    await expectCode(
      svc.connect.listUsers({ pageSize: -1 }, bearer(adminToken)),
      Code.InvalidArgument,
      /page_size must not be negative/,
    );
    const first = await svc.connect.listUsers({ pageSize: 2 }, bearer(adminToken));
    const [body = "", mac = ""] = first.nextPageToken.split(".");
    // A cursor moved by hand (its first character changed) no longer matches its MAC.
    const moved = `${body.startsWith("W") ? "X" : "W"}${body.slice(1)}.${mac}`;
    for (const pageToken of [moved, `${body}.${mac}x`, "garbage", `${first.nextPageToken}.x`]) {
      await expectCode(
        svc.connect.listUsers({ pageSize: 2, pageToken }, bearer(adminToken)),
        Code.InvalidArgument,
        /invalid page_token: pass the next_page_token of the previous page/,
      );
    }
  });
});

describe("GetUser", () => {
  it("shows a member another account's profile but not its email; its own and an admin's view have it", async () => {
    const other = await svc.connect.getUser({ id: member(3).id }, bearer(memberToken));
    expect(other).toMatchObject({ id: member(3).id, displayName: "M3", email: "" });
    const own = await svc.connect.getUser({ id: member(0).id }, bearer(memberToken));
    expect(own.email).toBe(member(0).email);
    const asAdmin = await svc.grpc.getUser({ id: member(3).id }, bearer(adminToken));
    expect(asAdmin.email).toBe(member(3).email);
  });

  it("is InvalidArgument for a malformed id, NotFound for an unknown one", async () => {
    await expectCode(
      svc.connect.getUser({ id: "not-a-uuid" }, bearer(memberToken)),
      Code.InvalidArgument,
      /id must be a UUID/,
    );
    const unknown = crypto.randomUUID();
    await expectCode(
      svc.connect.getUser({ id: unknown }, bearer(memberToken)),
      Code.NotFound,
      new RegExp(`user ${unknown} not found`),
    );
  });

  it("is Unauthenticated without a token", async () => {
    await expectCode(
      svc.connect.getUser({ id: member(3).id }),
      Code.Unauthenticated,
      /missing bearer token/,
    );
  });
});
