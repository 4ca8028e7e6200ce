// Sessions through the network: Login's failures (indistinguishable, equally slow, throttled),
// refresh-token rotation with reuse detection, and Logout. LOGIN_MAX_FAILURES=3 and
// LOGIN_LOCK_S=1 keep the lockout tests short. Then the session RPCs over Connect's in-memory
// transport with a hand-driven key-reload schedule: Refresh once the reload interval has passed,
// and Login of an account whose email is not verified.
import { randomUUID } from "node:crypto";
import { Code, createClient, createRouterTransport } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { UserService } from "../../gen/protomesh/user/v1/user_pb.ts";
import { loadConfig } from "../../kit/config.ts";
import { openTestDatabase } from "../../test/support/database.ts";
import { handDrivenSchedule } from "../../test/support/hand-driven-schedule.ts";
import { delay, settle } from "../../test/support/settle.ts";
import {
  bearer,
  expectCode,
  jwtPart,
  median,
  registerAndLogin,
  startUserService,
  testLog,
  testPassword,
  type UserServiceUnderTest,
  uniqueEmail,
} from "../../test/support/user-service.ts";
import { userConfigSchema } from "./config.ts";
import { User, userEntities } from "./entities.ts";
import { loadSigningKeys, rotateSigningKey } from "./keys.ts";
import { userMigrations } from "./migrations.ts";
import { createPasswordCheck } from "./password-check.ts";
import { hashPassword } from "./passwords.ts";
import { createRevocations } from "./revocations.ts";
import { createSessionRpcs } from "./session-rpcs.ts";

const maxFailures = 3;
const lockSeconds = 1;

let svc: UserServiceUnderTest;

beforeAll(async () => {
  svc = await startUserService({
    LOGIN_MAX_FAILURES: String(maxFailures),
    LOGIN_LOCK_S: String(lockSeconds),
    // These tests are about sessions, not verification: their accounts log in unverified.
    LOGIN_REQUIRE_VERIFIED_EMAIL: "false",
  });
});
afterAll(async () => {
  await svc?.close();
});

const wrongCredentials = /^invalid email or password$/;
const lockedOut = /^too many failed logins; try again in \d+ s$/;
const badRefresh = /^invalid or expired refresh token$/;

async function register(email: string): Promise<void> {
  await svc.connect.register({ email, password: testPassword, displayName: "Session Tester" });
}

/** The milliseconds a failing login takes. */
async function timeFailedLogin(email: string, password: string): Promise<number> {
  const started = performance.now();
  await expectCode(svc.connect.login({ email, password }), Code.Unauthenticated, wrongCredentials);
  return performance.now() - started;
}

describe("a failed login", () => {
  it("says the same for a wrong password and for an unknown email", async () => {
    const email = uniqueEmail("same");
    await register(email);
    const wrong = await expectCode(
      svc.connect.login({ email, password: "wrong password" }),
      Code.Unauthenticated,
      wrongCredentials,
    );
    const unknown = await expectCode(
      svc.connect.login({ email: uniqueEmail("nobody"), password: testPassword }),
      Code.Unauthenticated,
      wrongCredentials,
    );
    expect(unknown.rawMessage).toBe(wrong.rawMessage);
  });

  it("takes as long for an unknown email as for a wrong password (both run argon2)", async () => {
    // Five accounts, each failed at most twice: none reaches the lockout, which answers early.
    const emails = Array.from({ length: 5 }, () => uniqueEmail("timing"));
    await Promise.all(emails.map(register));
    const [warmUp = "", ...measured] = emails;
    await timeFailedLogin(warmUp, "wrong password");
    await timeFailedLogin(uniqueEmail("nobody"), testPassword);
    const wrongPassword: number[] = [];
    const unknownEmail: number[] = [];
    // Interleaved, so a burst of load elsewhere slows both kinds alike.
    for (let i = 0; i < 8; i++) {
      wrongPassword.push(await timeFailedLogin(measured[i % measured.length] ?? "", "wrong one"));
      unknownEmail.push(await timeFailedLogin(uniqueEmail("nobody"), testPassword));
    }
    const ratio = median(unknownEmail) / median(wrongPassword);
    expect(
      ratio,
      `medians: unknown ${median(unknownEmail)} ms, wrong ${median(wrongPassword)} ms`,
    ).toBeGreaterThan(0.5);
    expect(ratio).toBeLessThan(2);
  });
});

describe(`after ${maxFailures} failed logins`, () => {
  it("an account is ResourceExhausted even with the right password, until LOGIN_LOCK_S passes", async () => {
    const email = uniqueEmail("locked");
    await register(email);
    // Failures below the limit lock nothing, and a success starts the count again.
    for (let i = 1; i < maxFailures; i++) {
      await expectCode(
        svc.connect.login({ email, password: "wrong password" }),
        Code.Unauthenticated,
        wrongCredentials,
      );
    }
    await svc.connect.login({ email, password: testPassword });
    for (let i = 0; i < maxFailures; i++) {
      await expectCode(
        svc.connect.login({ email, password: "wrong password" }),
        Code.Unauthenticated,
        wrongCredentials,
      );
    }
    await expectCode(
      svc.connect.login({ email, password: testPassword }),
      Code.ResourceExhausted,
      lockedOut,
    );
    // The lock is on the address, however it is spelled.
    await expectCode(
      svc.connect.login({ email: ` ${email.toUpperCase()}`, password: testPassword }),
      Code.ResourceExhausted,
      lockedOut,
    );
    // The server set the lock before answering the last failure: this is past its end.
    await delay(lockSeconds * 1000 + 200);
    const login = await svc.connect.login({ email, password: testPassword });
    expect(login.user?.email).toBe(email);
  });

  it("an unknown address is ResourceExhausted too, so the lockout reveals no account", async () => {
    const email = uniqueEmail("ghost");
    for (let i = 0; i < maxFailures; i++) {
      await expectCode(
        svc.connect.login({ email, password: testPassword }),
        Code.Unauthenticated,
        wrongCredentials,
      );
    }
    await expectCode(
      svc.connect.login({ email, password: testPassword }),
      Code.ResourceExhausted,
      lockedOut,
    );
    await delay(lockSeconds * 1000 + 200);
    await expectCode(
      svc.connect.login({ email, password: testPassword }),
      Code.Unauthenticated,
      wrongCredentials,
    );
  });
});

describe("concurrent failed logins", () => {
  it(`get no more than ${maxFailures} password checks`, async () => {
    const email = uniqueEmail("burst");
    await register(email);
    const results = await Promise.all(
      Array.from({ length: 12 }, () =>
        settle(svc.connect.login({ email, password: "wrong password" })),
      ),
    );
    const checked = results.filter((r) => !r.ok && r.error.code === Code.Unauthenticated);
    const refused = results.filter((r) => !r.ok && r.error.code === Code.ResourceExhausted);
    expect({ checked: checked.length, refused: refused.length }).toEqual({
      checked: maxFailures,
      refused: 12 - maxFailures,
    });
  });
});

describe("Refresh", () => {
  it("returns a new refresh token and an access token that works", async () => {
    const { login } = await registerAndLogin(svc.connect, uniqueEmail("refresh"));
    const refreshed = await svc.connect.refresh({ refreshToken: login.refreshToken });
    expect(refreshed).toMatchObject({ tokenType: "Bearer", expiresIn: 900 });
    expect(refreshed.refreshToken).not.toBe(login.refreshToken);
    expect(refreshed.accessToken).not.toBe(login.accessToken);
    const me = await svc.connect.getMe({}, bearer(refreshed.accessToken));
    expect(me.id).toBe(login.user?.id);
    // And the new refresh token rotates in turn.
    const again = await svc.grpc.refresh({ refreshToken: refreshed.refreshToken });
    expect(again.refreshToken).not.toBe(refreshed.refreshToken);
  });

  it("refuses a reused refresh token and revokes its whole family, and only that family", async () => {
    const email = uniqueEmail("reuse");
    const { login: first } = await registerAndLogin(svc.connect, email);
    const other = await svc.connect.login({ email, password: testPassword });
    const rotated = await svc.connect.refresh({ refreshToken: first.refreshToken });

    await expectCode(
      svc.connect.refresh({ refreshToken: first.refreshToken }),
      Code.Unauthenticated,
      badRefresh,
    );
    // The reuse may be a thief's or the owner's: the live token of that login dies too.
    await expectCode(
      svc.connect.refresh({ refreshToken: rotated.refreshToken }),
      Code.Unauthenticated,
      badRefresh,
    );
    // Another login of the same account is another family, untouched.
    const fromOther = await svc.connect.refresh({ refreshToken: other.refreshToken });
    expect(fromOther.refreshToken).not.toBe("");
  });

  it("is Unauthenticated for an unknown token and InvalidArgument for none", async () => {
    await expectCode(
      svc.connect.refresh({ refreshToken: "A".repeat(43) }),
      Code.Unauthenticated,
      badRefresh,
    );
    await expectCode(
      svc.connect.refresh({ refreshToken: "" }),
      Code.InvalidArgument,
      /refresh_token is required/,
    );
  });
});

describe("Logout", () => {
  it("revokes the session: its refresh token stops working; logging out twice is fine", async () => {
    const { login } = await registerAndLogin(svc.connect, uniqueEmail("logout"));
    const rotated = await svc.connect.refresh({ refreshToken: login.refreshToken });
    const empty = await svc.connect.logout({ refreshToken: rotated.refreshToken });
    expect(empty.$typeName).toBe("google.protobuf.Empty");
    await expectCode(
      svc.connect.refresh({ refreshToken: rotated.refreshToken }),
      Code.Unauthenticated,
      badRefresh,
    );
    await svc.connect.logout({ refreshToken: rotated.refreshToken });
    await svc.grpc.logout({ refreshToken: rotated.refreshToken });
    // The contract: access tokens already issued stay valid until they expire.
    const me = await svc.connect.getMe({}, bearer(rotated.accessToken));
    expect(me.id).toBe(login.user?.id);
  });

  it("with an earlier token of the session ends the session's live token too", async () => {
    const { login } = await registerAndLogin(svc.connect, uniqueEmail("family"));
    const rotated = await svc.connect.refresh({ refreshToken: login.refreshToken });
    await svc.connect.logout({ refreshToken: login.refreshToken });
    await expectCode(
      svc.connect.refresh({ refreshToken: rotated.refreshToken }),
      Code.Unauthenticated,
      badRefresh,
    );
  });

  it("succeeds for an unknown token and is InvalidArgument for none", async () => {
    await svc.connect.logout({ refreshToken: "B".repeat(43) });
    await expectCode(
      svc.connect.logout({ refreshToken: "" }),
      Code.InvalidArgument,
      /refresh_token is required/,
    );
  });
});

/**
 * The session RPCs over Connect's in-memory transport, on their own test database, with the
 * signing keys' reloads driven by the test; `env` is the user service's configuration.
 */
async function inMemorySessions(env: Readonly<Record<string, string>> = {}) {
  const db = await openTestDatabase({
    entities: userEntities,
    migrations: userMigrations,
    log: testLog,
  });
  const schedule = handDrivenSchedule();
  const keys = await loadSigningKeys(db, { every: schedule.every, log: testLog });
  const config = loadConfig(userConfigSchema, env);
  const revocations = createRevocations(db, config, testLog);
  const passwords = createPasswordCheck(db, config, testLog);
  const client = createClient(
    UserService,
    createRouterTransport(({ service }) => {
      service(
        UserService,
        createSessionRpcs({ db, keys, config, log: testLog, passwords, revocations }),
      );
    }),
  );
  /** Adds an account with testPassword, as Register (and VerifyEmail, if verified) leave it. */
  async function addAccount(label: string, emailVerified: boolean): Promise<string> {
    const email = uniqueEmail(label);
    const now = new Date();
    const em = db.fork();
    em.create(User, {
      id: randomUUID(),
      email,
      passwordHash: await hashPassword(testPassword),
      displayName: "In-memory Tester",
      role: "member",
      emailVerified,
      disabled: false,
      createdAt: now,
      updatedAt: now,
    });
    await em.flush();
    return email;
  }
  return {
    db,
    schedule,
    client,
    addAccount,
    async close() {
      keys.close();
      revocations.list.close();
      await db.close();
    },
  };
}

describe("Refresh after the signing keys' reload interval", () => {
  it("completes with the reloaded key, and the calls after it keep working", async () => {
    const { db, schedule, client, addAccount, close } = await inMemorySessions();
    try {
      const email = await addAccount("reload", true);
      const login = await client.login({ email, password: testPassword });

      // A rotation, then the reload interval passes: the next tokens carry the new key.
      const rotated = await rotateSigningKey(db);
      await schedule.elapse();
      const refreshed = await client.refresh({ refreshToken: login.refreshToken });
      expect(jwtPart(refreshed.accessToken, 0).kid).toBe(rotated);

      const again = await client.login({ email, password: testPassword });
      const next = await client.refresh({ refreshToken: again.refreshToken });
      await client.logout({ refreshToken: next.refreshToken });
      await expectCode(
        client.refresh({ refreshToken: next.refreshToken }),
        Code.Unauthenticated,
        badRefresh,
      );
    } finally {
      await close();
    }
  });
});

describe("Login of an account whose email is not verified", () => {
  const mustVerify = /^verify your email address first: follow the verification mail/;

  it("is FailedPrecondition with the right password; a wrong one says what it says to anyone", async () => {
    const { client, addAccount, close } = await inMemorySessions();
    try {
      const email = await addAccount("unverified", false);
      await expectCode(
        client.login({ email, password: testPassword }),
        Code.FailedPrecondition,
        mustVerify,
      );
      const wrong = await expectCode(
        client.login({ email, password: "wrong password" }),
        Code.Unauthenticated,
        wrongCredentials,
      );
      const unknown = await expectCode(
        client.login({ email: uniqueEmail("nobody"), password: "wrong password" }),
        Code.Unauthenticated,
        wrongCredentials,
      );
      expect(wrong.rawMessage).toBe(unknown.rawMessage);
      const verified = await addAccount("verified", true);
      expect((await client.login({ email: verified, password: testPassword })).user?.email).toBe(
        verified,
      );
    } finally {
      await close();
    }
  });

  it("succeeds when LOGIN_REQUIRE_VERIFIED_EMAIL is false", async () => {
    const { client, addAccount, close } = await inMemorySessions({
      LOGIN_REQUIRE_VERIFIED_EMAIL: "false",
    });
    try {
      const email = await addAccount("unverified", false);
      const login = await client.login({ email, password: testPassword });
      expect(login.user).toMatchObject({ email, emailVerified: false });
    } finally {
      await close();
    }
  });
});
