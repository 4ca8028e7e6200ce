import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Client, type Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { type ParsedMail, simpleParser } from "mailparser";
import { expect } from "vitest";
import { type LoginResponse, type User, UserService } from "../../gen/protomesh/user/v1/user_pb.ts";
import { loadConfig } from "../../kit/config.ts";
import { createLogger } from "../../kit/log.ts";
import { type UserConfig, userConfigSchema } from "../../services/user/config.ts";
import { createUserServer, type UserServer } from "../../services/user/server.ts";
import { createEmptyDatabase, dropDatabase } from "./database.ts";

/** A client of the user service. */
export type UserClient = Client<typeof UserService>;

/** One in-process user service on its own port, database and data directory. */
export interface UserServiceUnderTest {
  readonly config: UserConfig;
  readonly service: UserServer;
  readonly baseUrl: string;
  /** Where `.eml` files land when SMTP_URL is unset. */
  readonly mailDir: string;
  /** The Connect protocol with JSON bodies over HTTP/1.1, as a browser or curl would talk. */
  readonly connect: UserClient;
  /** gRPC over HTTP/2 (cleartext, prior knowledge), as other services talk. */
  readonly grpc: UserClient;
  close(): Promise<void>;
}

/** The log of services under test: silent unless TEST_LOG_LEVEL asks otherwise. */
export const testLog = createLogger({
  name: "user-test",
  level: process.env.TEST_LOG_LEVEL ?? "silent",
  format: "json",
});

/**
 * Starts the user service on a free port with a fresh database: a new database on the real
 * PostgreSQL server when TEST_DATABASE_URL is set, else PGlite under a temporary DATA_DIR.
 * `env` holds further settings (SMTP_URL, ADMIN_EMAIL, LOGIN_MAX_FAILURES, ...).
 */
export async function startUserService(
  env: Readonly<Record<string, string>> = {},
): Promise<UserServiceUnderTest> {
  const dataDir = await mkdtemp(join(tmpdir(), "protomesh-user-test-"));
  const databaseUrl = await createEmptyDatabase();
  const config = loadConfig(userConfigSchema, {
    PORT: "0",
    HOST: "127.0.0.1",
    DATA_DIR: dataDir,
    DATABASE_URL: databaseUrl,
    LOG_LEVEL: "silent",
    ...env,
  });
  const service = await createUserServer({ config, log: testLog });
  const port = await service.listen();
  const baseUrl = `http://127.0.0.1:${port}`;
  return {
    config,
    service,
    baseUrl,
    mailDir: join(dataDir, "mail"),
    connect: createClient(
      UserService,
      createConnectTransport({ baseUrl, httpVersion: "1.1", useBinaryFormat: false }),
    ),
    grpc: createClient(UserService, createGrpcTransport({ baseUrl })),
    async close() {
      await service.close();
      if (databaseUrl) await dropDatabase(databaseUrl);
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** Call options that send an access token. */
export function bearer(accessToken: string): { headers: Record<string, string> } {
  return { headers: { authorization: `Bearer ${accessToken}` } };
}

/**
 * Asserts that a call fails with `code` and a message matching `message` (what the caller
 * must fix); returns the error for further checks.
 */
export async function expectCode(
  call: Promise<unknown>,
  code: Code,
  message: RegExp,
): Promise<ConnectError> {
  const error = await call.then(
    (value: unknown) => {
      throw new Error(`expected code ${code}, got a response: ${JSON.stringify(value)}`);
    },
    (err: unknown) => ConnectError.from(err),
  );
  expect({ code: error.code, message: error.rawMessage }).toEqual({
    code,
    message: expect.stringMatching(message),
  });
  return error;
}

let accountNo = 0;

/** A fresh address, unique within the run, so tests sharing a service never meet. */
export function uniqueEmail(label: string): string {
  accountNo += 1;
  return `${label}-${accountNo}-${process.pid}@example.com`;
}

/** The password every test account gets unless a test says otherwise. */
export const testPassword = "correct horse battery";

/** Registers an account and logs it in. */
export async function registerAndLogin(
  client: UserClient,
  email: string,
  displayName = "Test User",
  password = testPassword,
): Promise<{ user: User; login: LoginResponse }> {
  const user = await client.register({ email, password, displayName });
  const login = await client.login({ email, password });
  return { user, login };
}

/** A signed-in test user: their id and the call options that carry their token. */
export interface TestUser {
  readonly id: string;
  readonly email: string;
  readonly call: { headers: Record<string, string> };
}

/** Registers and logs in a new user per label, concurrently. */
export async function signUpUsers<const L extends readonly string[]>(
  client: UserClient,
  labels: L,
): Promise<{ [K in keyof L]: TestUser }> {
  const signedUp = await Promise.all(
    labels.map(async (label) => {
      const { user, login } = await registerAndLogin(client, uniqueEmail(label));
      return { id: user.id, email: user.email, call: bearer(login.accessToken) };
    }),
  );
  return signedUp as { [K in keyof L]: TestUser };
}

/** A JWS compact token's protected header (index 0) or payload (index 1), decoded. */
export function jwtPart(token: string, index: 0 | 1): Record<string, unknown> {
  const part = token.split(".")[index];
  if (part === undefined) throw new Error(`not a JWS compact token: ${token}`);
  return JSON.parse(Buffer.from(part, "base64url").toString("utf8")) as Record<string, unknown>;
}

/**
 * The verification token of a mail: the body puts it alone on an indented line (43 base64url
 * characters, 256 bits).
 */
export function verificationTokenOf(mail: ParsedMail): string {
  const token = /^ {4}([A-Za-z0-9_-]{43})$/m.exec(mail.text ?? "")?.[1];
  if (token === undefined) throw new Error(`no verification token in mail:\n${mail.text}`);
  return token;
}

/** The addresses a parsed mail is for. */
export function recipientsOf(mail: ParsedMail): string[] {
  const to = mail.to === undefined ? [] : Array.isArray(mail.to) ? mail.to : [mail.to];
  return to.flatMap((group) => group.value.map((address) => address.address ?? ""));
}

/** Whether a mail body is complete: its last line has been written. */
const isComplete = (mail: ParsedMail) => (mail.text ?? "").includes("If you did not register");

// A mail file never changes once fully written: each is parsed once.
const parsedEml = new Map<string, ParsedMail>();

/**
 * Waits for the `.eml` file addressed to `to` in `dir` (mail is sent by a background consumer,
 * after the Register call has returned) and returns it parsed.
 */
export async function waitForEml(dir: string, to: string, timeoutMs = 10_000): Promise<ParsedMail> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const names = await readdir(dir).catch(() => [] as string[]);
    for (const name of names.filter((n) => n.endsWith(".eml"))) {
      const path = join(dir, name);
      let mail = parsedEml.get(path);
      if (mail === undefined) {
        mail = await simpleParser(await readFile(path));
        // A file read while it is being written is read again on the next round.
        if (!isComplete(mail)) continue;
        parsedEml.set(path, mail);
      }
      if (recipientsOf(mail).includes(to)) return mail;
    }
    if (Date.now() > deadline) throw new Error(`no mail to ${to} in ${dir} within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** The median of some numbers. */
export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  const at = (i: number) => sorted[i] ?? Number.NaN;
  return sorted.length % 2 === 1 ? at(mid) : (at(mid - 1) + at(mid)) / 2;
}
