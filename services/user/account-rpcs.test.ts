// Accounts through the network, as a user sees them: register, the verification mail (.eml
// files in DATA_DIR/mail, no SMTP_URL), verify, log in, read and update the profile, over the
// Connect protocol with JSON and over gRPC; and every way a registration can be refused.
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Role } from "../../gen/protomesh/user/v1/user_pb.ts";
import { settle } from "../../test/support/settle.ts";
import {
  bearer,
  expectCode,
  startUserService,
  testPassword,
  type UserClient,
  type UserServiceUnderTest,
  uniqueEmail,
  verificationTokenOf,
  waitForEml,
} from "../../test/support/user-service.ts";

const uuidPattern = /^[\da-f]{8}-[\da-f]{4}-[\da-f]{4}-[\da-f]{4}-[\da-f]{12}$/;

let svc: UserServiceUnderTest;

beforeAll(async () => {
  svc = await startUserService();
});
afterAll(async () => {
  await svc?.close();
});

/** Verifies an account's address with the token of its verification mail, as its owner would. */
async function verify(email: string): Promise<void> {
  const mail = await waitForEml(svc.mailDir, email);
  await svc.connect.verifyEmail({ token: verificationTokenOf(mail) });
}

/** Register, mailed token, VerifyEmail, Login, GetMe: the first minutes of every user. */
async function signUpFlow(client: UserClient, given: string, expected: string) {
  const registered = await client.register({
    email: given,
    password: testPassword,
    displayName: "  Ada Lovelace ",
  });
  expect(registered).toMatchObject({
    email: expected,
    displayName: "Ada Lovelace",
    role: Role.MEMBER,
    emailVerified: false,
  });
  expect(registered.id).toMatch(uuidPattern);
  expect(registered.createTime).toBeDefined();

  // Until the address is verified, the right password is refused with what to do.
  await expectCode(
    client.login({ email: expected, password: testPassword }),
    Code.FailedPrecondition,
    /^verify your email address first: follow the verification mail/,
  );

  const mail = await waitForEml(svc.mailDir, expected);
  expect(mail.subject).toBe("Verify your protomesh account");
  const verified = await client.verifyEmail({ token: verificationTokenOf(mail) });
  expect(verified).toMatchObject({ id: registered.id, email: expected, emailVerified: true });

  // Login is case-insensitive and ignores surrounding spaces, like Register.
  const login = await client.login({
    email: ` ${expected.toUpperCase()} `,
    password: testPassword,
  });
  expect(login).toMatchObject({ tokenType: "Bearer", expiresIn: 900 });
  expect(login.user).toMatchObject({ id: registered.id, emailVerified: true, role: Role.MEMBER });
  expect(login.accessToken.split(".")).toHaveLength(3);
  expect(login.refreshToken).not.toBe("");

  const me = await client.getMe({}, bearer(login.accessToken));
  expect(me).toMatchObject({
    id: registered.id,
    email: expected,
    displayName: "Ada Lovelace",
    emailVerified: true,
  });
  return { registered, mail };
}

describe("signing up", () => {
  it("registers, verifies the mailed token, logs in and reads the account over Connect JSON", async () => {
    await signUpFlow(svc.connect, "  Ada@Example.COM ", "ada@example.com");
  });

  it("does the same over gRPC", async () => {
    await signUpFlow(svc.grpc, " Grace.Hopper@Example.ORG", "grace.hopper@example.org");
  });

  it("accepts a verification token once: the second use is InvalidArgument", async () => {
    const email = uniqueEmail("once");
    await svc.connect.register({ email, password: testPassword, displayName: "Once" });
    const token = verificationTokenOf(await waitForEml(svc.mailDir, email));
    expect((await svc.connect.verifyEmail({ token })).emailVerified).toBe(true);
    // NB: user.proto's VerifyEmail comment promises the opposite ("Repeating the call with the
    // same token returns the account unchanged"); the implementation and the brief say
    // single-use. See the report.
    await expectCode(
      svc.connect.verifyEmail({ token }),
      Code.InvalidArgument,
      /invalid, used or expired verification token/,
    );
  });

  it("refuses a missing or unknown verification token with InvalidArgument", async () => {
    await expectCode(
      svc.connect.verifyEmail({ token: "" }),
      Code.InvalidArgument,
      /token is required/,
    );
    await expectCode(
      svc.connect.verifyEmail({ token: "A".repeat(43) }),
      Code.InvalidArgument,
      /invalid, used or expired verification token; register again/,
    );
  });
});

describe("a registration with bad input", () => {
  const register = (email: string, password = testPassword, displayName = "Someone") =>
    svc.connect.register({ email, password, displayName });

  it("is InvalidArgument for a malformed email, naming the field", async () => {
    await expectCode(register(""), Code.InvalidArgument, /^email is required$/);
    await expectCode(register("   "), Code.InvalidArgument, /^email is required$/);
    for (const bad of ["not-an-email", "two@@example.com", "no-dot@example", "a b@example.com"]) {
      await expectCode(register(bad), Code.InvalidArgument, /^email ".*" is not a valid address$/);
    }
    const long = `${"a".repeat(243)}@example.com`; // 255 characters
    await expectCode(register(long), Code.InvalidArgument, /email must be at most 254 characters/);
  });

  it("is InvalidArgument for a password of 7 or of 129 characters", async () => {
    await expectCode(
      register(uniqueEmail("short"), "1234567"),
      Code.InvalidArgument,
      /password must be at least 8 characters/,
    );
    await expectCode(
      register(uniqueEmail("long"), "p".repeat(129)),
      Code.InvalidArgument,
      /password must be at most 128 characters/,
    );
    // Characters, not bytes: 7 emoji are 28 UTF-8 bytes and still too short.
    await expectCode(
      register(uniqueEmail("emoji"), "🔑".repeat(7)),
      Code.InvalidArgument,
      /password must be at least 8 characters/,
    );
  });

  it("accepts passwords of exactly 8 and 128 characters", async () => {
    for (const password of ["12345678", "p".repeat(128)]) {
      const email = uniqueEmail("edge");
      await register(email, password);
      await verify(email);
      expect((await svc.connect.login({ email, password })).user?.email).toBe(email);
    }
  });

  it("is InvalidArgument for an empty or too long display_name", async () => {
    await expectCode(
      register(uniqueEmail("noname"), testPassword, ""),
      Code.InvalidArgument,
      /display_name is required/,
    );
    await expectCode(
      register(uniqueEmail("blank"), testPassword, "   "),
      Code.InvalidArgument,
      /display_name is required/,
    );
    await expectCode(
      register(uniqueEmail("longname"), testPassword, "n".repeat(101)),
      Code.InvalidArgument,
      /display_name must be at most 100 characters/,
    );
  });

  it("creates nothing: the address can be registered afterwards", async () => {
    const email = uniqueEmail("retry");
    await expectCode(register(email, "short"), Code.InvalidArgument, /password/);
    expect((await register(email)).email).toBe(email);
  });

  it("is AlreadyExists for an email taken in another case", async () => {
    const email = uniqueEmail("taken");
    await register(email);
    await expectCode(
      register(` ${email.toUpperCase()}`),
      Code.AlreadyExists,
      new RegExp(`an account with email ${email.replaceAll(".", "\\.")} already exists`),
    );
  });
});

describe("20 concurrent registrations of one email", () => {
  it("let exactly one succeed; the 19 others get AlreadyExists", async () => {
    const email = uniqueEmail("race");
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        settle(
          svc.connect.register({
            // Different spellings of one address, each with its own password.
            email: i % 2 === 0 ? email : email.toUpperCase(),
            password: `password-${i}`,
            displayName: `Racer ${i}`,
          }),
        ),
      ),
    );
    const winners = results.flatMap((r, i) => (r.ok ? [i] : []));
    const losers = results.flatMap((r) => (r.ok ? [] : [r.error]));
    expect(winners).toHaveLength(1);
    expect(losers.map((e) => e.code)).toEqual(Array(19).fill(Code.AlreadyExists));
    for (const error of losers) expect(error.rawMessage).toMatch(/already exists/);
    // The stored account is the winner's: its password logs in, a loser's does not.
    const winner = winners[0] ?? -1;
    await verify(email);
    const login = await svc.connect.login({ email, password: `password-${winner}` });
    expect(login.user?.displayName).toBe(`Racer ${winner}`);
    await expectCode(
      svc.connect.login({ email, password: `password-${(winner + 1) % 20}` }),
      Code.Unauthenticated,
      /invalid email or password/,
    );
  });
});

describe("UpdateMe", () => {
  let token = "";
  beforeAll(async () => {
    const email = uniqueEmail("profile");
    await svc.connect.register({ email, password: testPassword, displayName: "Original" });
    await verify(email);
    ({ accessToken: token } = await svc.connect.login({ email, password: testPassword }));
  });

  it("changes display_name when the mask names it", async () => {
    const updated = await svc.connect.updateMe(
      { user: { displayName: "  Renamed " }, updateMask: { paths: ["display_name"] } },
      bearer(token),
    );
    expect(updated.displayName).toBe("Renamed");
    expect((await svc.connect.getMe({}, bearer(token))).displayName).toBe("Renamed");
  });

  it("is InvalidArgument when the mask names email", async () => {
    await expectCode(
      svc.connect.updateMe(
        { user: { email: "new@example.com" }, updateMask: { paths: ["email"] } },
        bearer(token),
      ),
      Code.InvalidArgument,
      /email cannot be updated here; only display_name can/,
    );
  });

  it("is InvalidArgument when the mask names display_name but the name is empty", async () => {
    await expectCode(
      svc.connect.updateMe(
        { user: { displayName: "" }, updateMask: { paths: ["display_name"] } },
        bearer(token),
      ),
      Code.InvalidArgument,
      /display_name is required/,
    );
  });

  it("without a mask, updates display_name when it is set and leaves it when it is not", async () => {
    const renamed = await svc.connect.updateMe({ user: { displayName: "No Mask" } }, bearer(token));
    expect(renamed.displayName).toBe("No Mask");
    const unchanged = await svc.connect.updateMe({ user: {} }, bearer(token));
    expect(unchanged.displayName).toBe("No Mask");
    expect((await svc.grpc.getMe({}, bearer(token))).displayName).toBe("No Mask");
  });

  it("without a mask or a user, changes nothing", async () => {
    const before = await svc.connect.getMe({}, bearer(token));
    const after = await svc.connect.updateMe({}, bearer(token));
    expect(after.displayName).toBe(before.displayName);
  });

  it("is Unauthenticated without a token", async () => {
    await expectCode(
      svc.connect.updateMe({ user: { displayName: "Anyone" } }),
      Code.Unauthenticated,
      /missing bearer token/,
    );
  });
});
