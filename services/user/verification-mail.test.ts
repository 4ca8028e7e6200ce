// The verification mail end to end: with SMTP_URL it reaches a real SMTP server (smtp-server,
// started here) and its token verifies the account; with a 1 s VERIFICATION_TOKEN_TTL_S the
// mailed token expires.
import { readdir } from "node:fs/promises";
import type { AddressInfo } from "node:net";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import { type ParsedMail, simpleParser } from "mailparser";
import { SMTPServer, type SMTPServerEnvelope } from "smtp-server";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { delay } from "../../test/support/settle.ts";
import {
  bearer,
  expectCode,
  startUserService,
  testPassword,
  type UserServiceUnderTest,
  verificationTokenOf,
  waitForEml,
} from "../../test/support/user-service.ts";

interface Received {
  readonly envelope: SMTPServerEnvelope;
  readonly mail: ParsedMail;
}

const received: Received[] = [];
const smtp = new SMTPServer({
  authOptional: true,
  disabledCommands: ["STARTTLS"],
  logger: false,
  onData(stream, session, callback) {
    const envelope = session.envelope;
    simpleParser(stream).then(
      (mail) => {
        received.push({ envelope, mail });
        callback();
      },
      (err: unknown) => callback(err instanceof Error ? err : new Error(String(err))),
    );
  },
});

/** Waits for the message the SMTP server received for `to`. */
async function waitForSmtp(to: string, timeoutMs = 10_000): Promise<Received> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = received.find((r) => r.envelope.rcptTo.some((a) => a.address === to));
    if (found) return found;
    if (Date.now() > deadline) throw new Error(`the SMTP server got no mail for ${to}`);
    await delay(25);
  }
}

let viaSmtp: UserServiceUnderTest;
let shortLived: UserServiceUnderTest;
const ttlSeconds = 1;

beforeAll(async () => {
  await new Promise<void>((resolve, reject) => {
    smtp.server.once("error", reject);
    smtp.listen(0, "127.0.0.1", () => resolve());
  });
  const { port } = smtp.server.address() as AddressInfo;
  [viaSmtp, shortLived] = await Promise.all([
    startUserService({
      SMTP_URL: `smtp://127.0.0.1:${port}`,
      MAIL_FROM: "Protomesh Test <no-reply@mesh.example.com>",
      PUBLIC_URL: "https://mesh.example.com",
    }),
    startUserService({ VERIFICATION_TOKEN_TTL_S: String(ttlSeconds) }),
  ]);
});
afterAll(async () => {
  await Promise.all([viaSmtp?.close(), shortLived?.close()]);
  await new Promise<void>((resolve) => smtp.close(() => resolve()));
});

describe("with SMTP_URL, the verification mail", () => {
  it("reaches the SMTP server, and its token verifies the account", async () => {
    const registered = await viaSmtp.connect.register({
      email: "  Mail.User@Example.COM ",
      password: testPassword,
      displayName: "Mail User",
    });
    const email = "mail.user@example.com";
    expect(registered.email).toBe(email);

    const { envelope, mail } = await waitForSmtp(email);
    expect(envelope.mailFrom).toMatchObject({ address: "no-reply@mesh.example.com" });
    expect(envelope.rcptTo.map((a) => a.address)).toEqual([email]);
    expect(mail.from?.text).toBe('"Protomesh Test" <no-reply@mesh.example.com>');
    expect(mail.subject).toBe("Verify your protomesh account");
    expect(mail.text).toContain("Hello Mail User,");
    const token = verificationTokenOf(mail);
    // The example command points at PUBLIC_URL, with the token in its body.
    expect(mail.text).toContain(
      `curl -X POST https://mesh.example.com/v1/auth/verify-email -H 'Content-Type: application/json' -d '{"token":"${token}"}'`,
    );

    const verified = await viaSmtp.connect.verifyEmail({ token });
    expect(verified).toMatchObject({ id: registered.id, emailVerified: true });
    const login = await viaSmtp.connect.login({ email, password: testPassword });
    expect(login.user?.emailVerified).toBe(true);
    expect((await viaSmtp.grpc.getMe({}, bearer(login.accessToken))).emailVerified).toBe(true);

    // Sent once, and over SMTP only: no .eml file was written instead.
    expect(received.filter((r) => r.mail.subject === mail.subject)).toHaveLength(1);
    expect(await readdir(viaSmtp.mailDir).catch(() => [])).toEqual([]);
  });
});

describe("a verification token past VERIFICATION_TOKEN_TTL_S", () => {
  it("is InvalidArgument, and the account stays unverified: it cannot log in", async () => {
    const email = "late@example.com";
    const registered = await shortLived.connect.register({
      email,
      password: testPassword,
      displayName: "Late",
    });
    const token = verificationTokenOf(await waitForEml(shortLived.mailDir, email));
    // The token expires TTL after the account's creation time (same clock, same process).
    const created = registered.createTime ? timestampDate(registered.createTime).getTime() : 0;
    await delay(Math.max(0, created + ttlSeconds * 1000 + 100 - Date.now()));
    await expectCode(
      shortLived.connect.verifyEmail({ token }),
      Code.InvalidArgument,
      /invalid, used or expired verification token; register again or ask for a new mail/,
    );
    await expectCode(
      shortLived.connect.login({ email, password: testPassword }),
      Code.FailedPrecondition,
      /^verify your email address first/,
    );
  });
});
