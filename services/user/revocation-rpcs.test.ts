// Ending an account's access through the network: LogoutAll, ChangePassword, DeleteMe and an
// admin's DisableUser/EnableUser. Each one refuses the account's earlier access and refresh
// tokens at once on this instance, lists the account in ListRevocations for the other
// services, and lets a new login in right away. Then the list's window, on its own database.
import { fromBinary } from "@bufbuild/protobuf";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { EnvelopeSchema } from "../../gen/protomesh/events/v1/envelope_pb.ts";
import { UserDeletedSchema, UserDisabledSchema } from "../../gen/protomesh/user/v1/events_pb.ts";
import { Role } from "../../gen/protomesh/user/v1/user_pb.ts";
import { loadConfig } from "../../kit/config.ts";
import { openTestDatabase } from "../../test/support/database.ts";
import {
  bearer,
  expectCode,
  registerAndLogin,
  startUserService,
  testLog,
  testPassword,
  type UserServiceUnderTest,
  uniqueEmail,
  verificationTokenOf,
  waitForEml,
} from "../../test/support/user-service.ts";
import { userStreams } from "./account-rpcs.ts";
import { userConfigSchema } from "./config.ts";
import { TokenRevocation, userEntities } from "./entities.ts";
import { userMigrations } from "./migrations.ts";
import { createRevocations } from "./revocations.ts";

const adminEmail = "revoking-admin@example.com";
let svc: UserServiceUnderTest;
let adminToken = "";

beforeAll(async () => {
  svc = await startUserService({ ADMIN_EMAIL: adminEmail, LOGIN_REQUIRE_VERIFIED_EMAIL: "false" });
  await svc.connect.register({ email: adminEmail, password: testPassword, displayName: "Admin" });
  const mail = await waitForEml(svc.mailDir, adminEmail);
  await svc.connect.verifyEmail({ token: verificationTokenOf(mail) });
  adminToken = (await svc.connect.login({ email: adminEmail, password: testPassword })).accessToken;
});
afterAll(async () => {
  await svc?.close();
});

const invalidToken = /invalid or expired access token/;

/** The tokens of one session. */
type Session = { readonly accessToken: string; readonly refreshToken: string };

/** Expects an access token and a refresh token of one session to be refused. */
async function expectSessionEnded(session: Session) {
  await expectCode(
    svc.connect.getMe({}, bearer(session.accessToken)),
    Code.Unauthenticated,
    invalidToken,
  );
  await expectCode(
    svc.grpc.getMe({}, bearer(session.accessToken)),
    Code.Unauthenticated,
    invalidToken,
  );
  await expectCode(
    svc.connect.refresh({ refreshToken: session.refreshToken }),
    Code.Unauthenticated,
    /invalid or expired refresh token/,
  );
}

/** The revocation ListRevocations has for an account, if any. */
async function revocationOf(userId: string): Promise<Date | undefined> {
  const { revocations } = await svc.grpc.listRevocations({});
  const entry = revocations.find((r) => r.userId === userId);
  return entry?.revokeTime ? timestampDate(entry.revokeTime) : undefined;
}

/** The events of a stream, decoded, read by a group of the test's own. */
async function eventsOf<D extends typeof UserDeletedSchema | typeof UserDisabledSchema>(
  stream: string,
  schema: D,
) {
  const { transport } = svc.service.jobs;
  const group = `test-${Math.random()}`;
  await transport.ensureGroup(stream, group);
  const entries = await transport.readNew(stream, group, "test", 100, 1_000);
  return entries.map((e) => fromBinary(schema, fromBinary(EnvelopeSchema, e.data).payload));
}

describe("LogoutAll", () => {
  it("ends every session of the account at once, and the next login works at once", async () => {
    const email = uniqueEmail("logout-all");
    const { user, login: first } = await registerAndLogin(svc.connect, email);
    const second = await svc.connect.login({ email, password: testPassword });
    const before = Date.now();
    await svc.connect.logoutAll({}, bearer(second.accessToken));
    const after = Date.now();

    await expectSessionEnded(first);
    await expectSessionEnded(second);
    const revokedAt = (await revocationOf(user.id))?.getTime();
    // Dated by the database's clock, to the millisecond of "iat", rounded up.
    expect(revokedAt).toBeGreaterThanOrEqual(before);
    expect(revokedAt).toBeLessThanOrEqual(after + 1);

    const again = await svc.connect.login({ email, password: testPassword });
    expect(await svc.connect.getMe({}, bearer(again.accessToken))).toMatchObject({ id: user.id });
    // A second LogoutAll right after still ends the new session, however soon.
    await svc.connect.logoutAll({}, bearer(again.accessToken));
    await expectSessionEnded(again);
  });

  it("is Unauthenticated without a token", async () => {
    await expectCode(svc.connect.logoutAll({}), Code.Unauthenticated, /missing bearer token/);
  });
});

describe("ChangePassword", () => {
  it("refuses a wrong current password and a too short new one, changing nothing", async () => {
    const email = uniqueEmail("change-refused");
    const { login } = await registerAndLogin(svc.connect, email);
    await expectCode(
      svc.connect.changePassword(
        { currentPassword: "not the password", newPassword: "another long one" },
        bearer(login.accessToken),
      ),
      Code.Unauthenticated,
      /wrong password/,
    );
    await expectCode(
      svc.connect.changePassword(
        { currentPassword: testPassword, newPassword: "short" },
        bearer(login.accessToken),
      ),
      Code.InvalidArgument,
      /password must be at least 8 characters/,
    );
    // The session and the password are as they were.
    await svc.connect.getMe({}, bearer(login.accessToken));
    await svc.connect.login({ email, password: testPassword });
  });

  it("changes the password and ends every session: only the new password logs in", async () => {
    const email = uniqueEmail("change");
    const { login } = await registerAndLogin(svc.connect, email);
    const newPassword = "a brand new passphrase";
    await svc.grpc.changePassword(
      { currentPassword: testPassword, newPassword },
      bearer(login.accessToken),
    );
    await expectSessionEnded(login);
    await expectCode(
      svc.connect.login({ email, password: testPassword }),
      Code.Unauthenticated,
      /invalid email or password/,
    );
    const relogin = await svc.connect.login({ email, password: newPassword });
    await svc.connect.getMe({}, bearer(relogin.accessToken));
  });
});

describe("DeleteMe", () => {
  it("refuses a wrong password and keeps the account", async () => {
    const email = uniqueEmail("delete-refused");
    const { login } = await registerAndLogin(svc.connect, email);
    await expectCode(
      svc.connect.deleteMe({ password: "not the password" }, bearer(login.accessToken)),
      Code.Unauthenticated,
      /wrong password/,
    );
    expect(await svc.connect.getMe({}, bearer(login.accessToken))).toMatchObject({ email });
  });

  it("deletes the account, ends its sessions, publishes UserDeleted and frees the address", async () => {
    const email = uniqueEmail("delete");
    const { user, login } = await registerAndLogin(svc.connect, email);
    await svc.connect.deleteMe({ password: testPassword }, bearer(login.accessToken));

    await expectSessionEnded(login);
    expect(await revocationOf(user.id)).toBeDefined();
    await expectCode(
      svc.connect.login({ email, password: testPassword }),
      Code.Unauthenticated,
      /invalid email or password/,
    );
    await expectCode(
      svc.connect.getUser({ id: user.id }, bearer(adminToken)),
      Code.NotFound,
      /not found/,
    );
    const events = await eventsOf(userStreams.deleted, UserDeletedSchema);
    expect(events.map((e) => e.userId)).toContain(user.id);

    // A new account under the same address is another account, and its tokens work.
    const { user: reborn, login: fresh } = await registerAndLogin(svc.connect, email);
    expect(reborn.id).not.toBe(user.id);
    await svc.connect.getMe({}, bearer(fresh.accessToken));
  });

  it("refuses to delete the last admin", async () => {
    await expectCode(
      svc.connect.deleteMe({ password: testPassword }, bearer(adminToken)),
      Code.FailedPrecondition,
      /the last admin cannot delete its account/,
    );
    await svc.connect.listUsers({}, bearer(adminToken));
  });
});

describe("DisableUser and EnableUser", () => {
  it("are for admins only", async () => {
    const { user, login } = await registerAndLogin(svc.connect, uniqueEmail("not-admin"));
    await expectCode(
      svc.connect.disableUser({ id: user.id }, bearer(login.accessToken)),
      Code.PermissionDenied,
      /requires role admin/,
    );
    await expectCode(
      svc.connect.enableUser({ id: user.id }, bearer(login.accessToken)),
      Code.PermissionDenied,
      /requires role admin/,
    );
  });

  it("disable an account: its sessions end, it cannot log in, and UserDisabled is published", async () => {
    const email = uniqueEmail("disabled");
    const { user, login } = await registerAndLogin(svc.connect, email);
    const disabled = await svc.connect.disableUser({ id: user.id }, bearer(adminToken));
    expect(disabled).toMatchObject({ id: user.id, disabled: true });

    await expectSessionEnded(login);
    await expectCode(
      svc.connect.login({ email, password: testPassword }),
      Code.PermissionDenied,
      /this account is disabled/,
    );
    // Disabling twice changes nothing and publishes nothing more.
    await svc.connect.disableUser({ id: user.id }, bearer(adminToken));
    const events = await eventsOf(userStreams.disabled, UserDisabledSchema);
    expect(events.filter((e) => e.userId === user.id)).toHaveLength(1);

    // Enabled again, it logs in; the tokens from before stay refused.
    const enabled = await svc.connect.enableUser({ id: user.id }, bearer(adminToken));
    expect(enabled).toMatchObject({ id: user.id, disabled: false });
    const relogin = await svc.connect.login({ email, password: testPassword });
    await svc.connect.getMe({}, bearer(relogin.accessToken));
    await expectSessionEnded(login);
  });

  it("refuse an admin disabling itself, a malformed id and an unknown one", async () => {
    const me = await svc.connect.getMe({}, bearer(adminToken));
    await expectCode(
      svc.connect.disableUser({ id: me.id }, bearer(adminToken)),
      Code.FailedPrecondition,
      /an admin cannot disable its own account/,
    );
    await expectCode(
      svc.connect.disableUser({ id: "42" }, bearer(adminToken)),
      Code.InvalidArgument,
      /id/,
    );
    await expectCode(
      svc.connect.enableUser({ id: "00000000-0000-4000-8000-000000000000" }, bearer(adminToken)),
      Code.NotFound,
      /not found/,
    );
    await svc.connect.listUsers({}, bearer(adminToken));
  });
});

describe("a revocation racing the account's own calls", () => {
  /** Calls `call` every `everyMs` while `during` runs; resolves with the calls that succeeded. */
  async function meanwhile<T>(
    during: Promise<unknown>,
    everyMs: number,
    call: () => Promise<T>,
  ): Promise<T[]> {
    const calls: Promise<T | undefined>[] = [];
    let done = false;
    void during.finally(() => {
      done = true;
    });
    while (!done) {
      calls.push(call().catch(() => undefined));
      await new Promise((resolve) => setTimeout(resolve, everyMs));
    }
    await during;
    return (await Promise.all(calls)).filter((c) => c !== undefined);
  }

  it("leaves no session to a login with the old password that raced ChangePassword", async () => {
    const email = uniqueEmail("change-race");
    const { login } = await registerAndLogin(svc.connect, email);
    const change = svc.connect.changePassword(
      { currentPassword: testPassword, newPassword: "the new passphrase" },
      bearer(login.accessToken),
    );
    const sessions = await meanwhile(change, 5, () =>
      svc.connect.login({ email, password: testPassword }),
    );
    for (const session of [login, ...sessions]) await expectSessionEnded(session);
  });

  /** Refreshes a session in a loop until a refresh fails; resolves with every session issued. */
  async function refreshChain(
    first: Session,
    untilDone: (first: Session) => Promise<unknown>,
  ): Promise<Session[]> {
    let latest = first;
    const issued = [first];
    const refreshing = (async () => {
      for (;;) {
        const next = await svc.connect
          .refresh({ refreshToken: latest.refreshToken })
          .catch(() => undefined);
        if (next === undefined) return;
        latest = next;
        issued.push(next);
      }
    })();
    // The chain is under way: a few refreshes have gone through.
    await vi.waitFor(() => expect(issued.length).toBeGreaterThan(2));
    await untilDone(first);
    await refreshing;
    return issued;
  }

  it("leaves no session to a refresh chain that raced LogoutAll", async () => {
    const { login } = await registerAndLogin(svc.connect, uniqueEmail("refresh-race"));
    const issued = await refreshChain(login, (first) =>
      svc.connect.logoutAll({}, bearer(first.accessToken)),
    );
    for (const session of issued) await expectSessionEnded(session);
  });

  it("leaves no refresh token to a refresh chain that raced Logout", async () => {
    const { login } = await registerAndLogin(svc.connect, uniqueEmail("logout-race"));
    const issued = await refreshChain(login, (first) =>
      svc.connect.logout({ refreshToken: first.refreshToken }),
    );
    for (const { refreshToken } of issued) {
      await expectCode(
        svc.connect.refresh({ refreshToken }),
        Code.Unauthenticated,
        /invalid or expired refresh token/,
      );
    }
  });

  it("keeps an enabled admin when two admins disable each other at once", async () => {
    const email = uniqueEmail("second-admin");
    const { user: second } = await registerAndLogin(svc.connect, email);
    await svc.connect.setUserRole({ id: second.id, role: Role.ADMIN }, bearer(adminToken));
    const secondToken = (await svc.connect.login({ email, password: testPassword })).accessToken;
    const first = await svc.connect.getMe({}, bearer(adminToken));
    const outcomes = await Promise.allSettled([
      svc.connect.disableUser({ id: second.id }, bearer(adminToken)),
      svc.connect.disableUser({ id: first.id }, bearer(secondToken)),
    ]);
    expect(outcomes.filter((o) => o.status === "fulfilled")).toHaveLength(1);
    const [survivor] = outcomes[0]?.status === "fulfilled" ? [adminToken] : [secondToken];
    const { users } = await svc.connect.listUsers({ pageSize: 200 }, bearer(survivor ?? ""));
    const enabledAdmins = users.filter((u) => u.role === Role.ADMIN && !u.disabled);
    expect(enabledAdmins).toHaveLength(1);
  });
});

describe("the revocation list", () => {
  it("keeps an entry for the access tokens' lifetime and the skew, then drops it", async () => {
    const db = await openTestDatabase({
      entities: userEntities,
      migrations: userMigrations,
      log: testLog,
    });
    const config = loadConfig(userConfigSchema, { ACCESS_TOKEN_TTL_S: "60" });
    const revocations = createRevocations(db, config, testLog);
    try {
      const at = (secondsAgo: number) => new Date(Date.now() - secondsAgo * 1000);
      const em = db.fork();
      // The lifetime (60 s) and the skew (30 s): 89 s ago is still in force, 91 s is not.
      em.create(TokenRevocation, {
        userId: "00000000-0000-4000-8000-000000000089",
        revokedBefore: at(89),
      });
      em.create(TokenRevocation, {
        userId: "00000000-0000-4000-8000-000000000091",
        revokedBefore: at(91),
      });
      await em.flush();
      const listed = await revocations.inForce();
      expect(listed.map((r) => r.userId)).toEqual(["00000000-0000-4000-8000-000000000089"]);
      // The next revocation sweeps what has expired.
      await revocations.revoking((_em, revoke) => revoke("00000000-0000-4000-8000-000000000001"));
      const stored = await db.fork().find(TokenRevocation, {}, { orderBy: { userId: "asc" } });
      expect(stored.map((r) => r.userId)).toEqual([
        "00000000-0000-4000-8000-000000000001",
        "00000000-0000-4000-8000-000000000089",
      ]);
    } finally {
      revocations.list.close();
      await db.close();
    }
  });
});
