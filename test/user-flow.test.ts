// The account flow as a person runs it with `buf curl` against the user service's own port,
// over gRPC (schema from reflection) and over Connect JSON.
import { mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { killAllProcesses, runBuf, type StartedProcess, startProcess } from "./support/process.ts";

const dataDir = mkdtempSync(join(tmpdir(), "protomesh-user-flow-"));
let user: StartedProcess;

beforeAll(async () => {
  user = await startProcess("services/user/main.js", { env: { DATA_DIR: dataDir } });
});
afterAll(killAllProcesses);

const protocols = {
  grpc: ["--protocol", "grpc", "--http2-prior-knowledge"],
  connect: ["--protocol", "connect"],
} as const;

async function call(
  protocol: keyof typeof protocols,
  method: string,
  body: unknown,
  token?: string,
): Promise<{ code: number; json: Record<string, unknown> }> {
  const auth = token ? ["-H", `Authorization: Bearer ${token}`] : [];
  const url = `${user.url}/protomesh.user.v1.UserService/${method}`;
  const { stdout, stderr, code } = await runBuf([
    "curl",
    ...protocols[protocol],
    ...auth,
    "-d",
    JSON.stringify(body),
    url,
  ]);
  return { code, json: JSON.parse(code === 0 ? stdout : stderr) as Record<string, unknown> };
}

/** The verification token in the newest mail to `email`: the mail's indented line. */
function tokenFromMail(email: string): string {
  const mails = readdirSync(join(dataDir, "mail"))
    .sort()
    .map((name) => readFileSync(join(dataDir, "mail", name), "utf8"))
    .filter((text) => text.includes(`To: ${email}`));
  const token = /^ {4}([\w-]{43})$/m.exec(mails.at(-1) ?? "")?.[1];
  if (!token) throw new Error(`no verification mail to ${email}`);
  return token;
}

async function until<T>(probe: () => T, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return probe();
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}

describe.each(Object.keys(protocols) as (keyof typeof protocols)[])(
  "with buf curl over %s",
  (protocol) => {
    const email = `${protocol}-user@example.com`;

    it("register -> mail -> verify -> login -> GetMe", async () => {
      const registered = await call(protocol, "Register", {
        email,
        password: "s3cret-enough",
        displayName: "Flow",
      });
      expect(registered.code).toBe(0);
      expect(registered.json).toMatchObject({ email, displayName: "Flow", role: "ROLE_MEMBER" });
      expect(registered.json.emailVerified).toBeUndefined();
      // Before the address is verified, the right password is refused with what to do, and a
      // wrong one gets the answer anybody gets.
      const early = await call(protocol, "Login", { email, password: "s3cret-enough" });
      expect(early.json).toMatchObject({ code: "failed_precondition" });
      expect(String(early.json.message)).toMatch(/^verify your email address first/);
      const wrong = await call(protocol, "Login", { email, password: "wrong password" });
      expect(wrong.json).toMatchObject({
        code: "unauthenticated",
        message: "invalid email or password",
      });

      const token = await until(() => tokenFromMail(email));
      const verified = await call(protocol, "VerifyEmail", { token });
      expect(verified.json).toMatchObject({ email, emailVerified: true });

      const login = await call(protocol, "Login", { email, password: "s3cret-enough" });
      expect(login.json).toMatchObject({ tokenType: "Bearer", expiresIn: 900 });
      const me = await call(protocol, "GetMe", {}, String(login.json.accessToken));
      expect(me.json).toMatchObject({ id: registered.json.id, email, emailVerified: true });
    });

    it("answers bad input with the code and a message that says what to fix", async () => {
      const cases: [string, unknown, string, RegExp][] = [
        [
          "Register",
          { email: "not-an-email", password: "long enough", displayName: "X" },
          "invalid_argument",
          /email/,
        ],
        [
          "Register",
          { email: "x@example.com", password: "short", displayName: "X" },
          "invalid_argument",
          /at least 8/,
        ],
        [
          "Register",
          { email, password: "s3cret-enough", displayName: "Again" },
          "already_exists",
          /already exists/,
        ],
        [
          "Login",
          { email, password: "wrong password" },
          "unauthenticated",
          /invalid email or password/,
        ],
        ["GetMe", {}, "unauthenticated", /missing bearer token/],
        ["ListUsers", {}, "unauthenticated", /missing bearer token/],
      ];
      for (const [method, body, code, message] of cases) {
        const result = await call(protocol, method, body);
        expect(result.json.code, method).toBe(code);
        expect(String(result.json.message), method).toMatch(message);
      }
    });
  },
);
