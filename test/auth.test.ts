// Tokens across services: the task service trusts what the user service signs (keys fetched
// from its GetJwks), refuses what it did not sign, and enforces each RPC's auth option. Then
// revoked accounts: the task service and the gateway poll ListRevocations every 500 ms here,
// and refuse a deleted, disabled or logged-out account's earlier token at their next reload.
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { exportJWK, generateKeyPair, SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { TaskService } from "../gen/protomesh/task/v1/task_pb.ts";
import { UserService } from "../gen/protomesh/user/v1/user_pb.ts";
import { killAllProcesses, type StartedProcess, startProcess } from "./support/process.ts";
import { verificationTokenOf, waitForEml } from "./support/user-service.ts";

let user: StartedProcess;
let task: StartedProcess;
let gateway: StartedProcess;
const userDataDir = mkdtempSync(join(tmpdir(), "protomesh-auth-test-"));
const adminEmail = "revoker@example.com";
const pollMs = 500;

beforeAll(async () => {
  // The accounts of this suite log in without verifying their email.
  user = await startProcess("services/user/main.js", {
    env: { LOGIN_REQUIRE_VERIFIED_EMAIL: "false", ADMIN_EMAIL: adminEmail, DATA_DIR: userDataDir },
  });
  const polling = { USER_SERVICE_URL: user.url, REVOCATION_POLL_MS: String(pollMs) };
  task = await startProcess("services/task/main.js", { env: polling });
  gateway = await startProcess("gateway/main.js", {
    env: { ...polling, TASK_SERVICE_URL: task.url, RATE_LIMITS: "default=off" },
  });
});
afterAll(killAllProcesses);

const connect = (baseUrl: string) => createConnectTransport({ baseUrl, httpVersion: "1.1" });

async function codeOf(call: Promise<unknown>): Promise<Code | "ok"> {
  try {
    await call;
    return "ok";
  } catch (err) {
    return ConnectError.from(err).code;
  }
}

describe("a token signed by the user service, used at the task service", () => {
  it("is accepted, so the call reaches the RPC and is answered", async () => {
    const users = createClient(UserService, connect(user.url));
    await users.register({
      email: "grace@example.com",
      password: "hopper-1906",
      displayName: "Grace",
    });
    const { accessToken } = await users.login({
      email: "grace@example.com",
      password: "hopper-1906",
    });
    const tasks = createClient(TaskService, connect(task.url));
    const headers = { authorization: `Bearer ${accessToken}` };
    // A new account is a member of no project yet.
    expect(await tasks.listProjects({}, { headers })).toMatchObject({ projects: [] });
  });

  it("is required, and one signed by anybody else is refused", async () => {
    const tasks = createClient(TaskService, connect(task.url));
    expect(await codeOf(tasks.listProjects({}))).toBe(Code.Unauthenticated);
    // A well-formed token with a key the user service never published, under a made-up kid.
    const { privateKey, publicKey } = await generateKeyPair("EdDSA", { crv: "Ed25519" });
    const kid = (await exportJWK(publicKey)).x ?? "forged";
    const forged = await new SignJWT({ roles: ["member", "admin"], email: "mallory@example.com" })
      .setProtectedHeader({ alg: "EdDSA", kid, typ: "JWT" })
      .setIssuer("protomesh")
      .setAudience("protomesh")
      .setSubject("00000000-0000-4000-8000-000000000000")
      .setJti("forged")
      .setIssuedAt()
      .setExpirationTime("5m")
      .sign(privateKey);
    const headers = { authorization: `Bearer ${forged}` };
    expect(await codeOf(tasks.listProjects({}, { headers }))).toBe(Code.Unauthenticated);
  });
});

describe("a revoked account's earlier token", () => {
  const users = () => createClient(UserService, connect(user.url));
  const tasks = () => createClient(TaskService, connect(task.url));

  /** Signs up a fresh account; its token works at the task service and the gateway. */
  async function signUp(label: string) {
    const email = `${label}-${Date.now()}@example.com`;
    const password = "revocable-passphrase";
    const account = await users().register({ email, password, displayName: label });
    const login = await users().login({ email, password });
    const headers = { authorization: `Bearer ${login.accessToken}` };
    expect(await codeOf(tasks().listProjects({}, { headers }))).toBe("ok");
    expect((await fetch(`${gateway.url}/v1/projects`, { headers })).status).toBe(200);
    return { account, password, headers };
  }

  /**
   * Waits until both the task service and the gateway refuse `headers`: at their next reload
   * of the revocations, well within the 10 intervals waited, not at the token's expiry.
   */
  async function expectRefusedEverywhere(headers: Record<string, string>): Promise<void> {
    await vi.waitFor(
      async () => {
        expect(await codeOf(tasks().listProjects({}, { headers }))).toBe(Code.Unauthenticated);
        const res = await fetch(`${gateway.url}/v1/projects`, { headers });
        await res.arrayBuffer();
        expect(res.status).toBe(401);
      },
      { timeout: 10 * pollMs, interval: 20 },
    );
  }

  it("is refused everywhere at the next reload once the account is deleted", async () => {
    const { password, headers } = await signUp("deleted");
    const deleted = await fetch(`${gateway.url}/v1/users/me`, {
      method: "DELETE",
      headers: { ...headers, "content-type": "application/json" },
      body: JSON.stringify({ password }),
    });
    expect(deleted.status).toBe(200);
    await expectRefusedEverywhere(headers);
    // Nothing was created for the account that no longer exists.
    const res = await fetch(`${gateway.url}/v1/projects`, {
      method: "POST",
      headers: { ...headers, "content-type": "application/json" },
      body: JSON.stringify({ name: "orphan" }),
    });
    expect(res.status).toBe(401);
  });

  it("is refused everywhere at the next reload once the account logs out everywhere", async () => {
    const { headers } = await signUp("logged-out");
    const loggedOut = await fetch(`${gateway.url}/v1/auth/logout-all`, {
      method: "POST",
      headers: { ...headers, "content-type": "application/json" },
      body: "{}",
    });
    expect(loggedOut.status).toBe(200);
    await expectRefusedEverywhere(headers);
  });

  it("is refused everywhere at the next reload once an admin disables the account", async () => {
    await users().register({ email: adminEmail, password: "admin-passphrase", displayName: "A" });
    const mail = await waitForEml(join(userDataDir, "mail"), adminEmail);
    await users().verifyEmail({ token: verificationTokenOf(mail) });
    const admin = await users().login({ email: adminEmail, password: "admin-passphrase" });
    const { account, headers } = await signUp("disabled");
    await users().disableUser(
      { id: account.id },
      { headers: { authorization: `Bearer ${admin.accessToken}` } },
    );
    await expectRefusedEverywhere(headers);
  });

  it("list is not served by the gateway, over Connect or gRPC: it is for the mesh's processes", async () => {
    for (const transport of [connect(gateway.url), createGrpcTransport({ baseUrl: gateway.url })]) {
      const call = createClient(UserService, transport).listRevocations({});
      await expect(call).rejects.toMatchObject({
        code: Code.Unimplemented,
        rawMessage: "/protomesh.user.v1.UserService/ListRevocations is not served by the gateway",
      });
    }
    // The services' own ports serve it.
    await createClient(UserService, connect(user.url)).listRevocations({});
  });
});
