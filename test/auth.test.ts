// Tokens across services: the task service trusts what the user service signs (keys fetched
// from its GetJwks), refuses what it did not sign, and enforces each RPC's auth option.
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { exportJWK, generateKeyPair, SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TaskService } from "../gen/protomesh/task/v1/task_pb.ts";
import { UserService } from "../gen/protomesh/user/v1/user_pb.ts";
import { killAllProcesses, type StartedProcess, startProcess } from "./support/process.ts";

let user: StartedProcess;
let task: StartedProcess;

beforeAll(async () => {
  // The accounts of this suite log in without verifying their email.
  user = await startProcess("services/user/main.js", {
    env: { LOGIN_REQUIRE_VERIFIED_EMAIL: "false" },
  });
  task = await startProcess("services/task/main.js", { env: { USER_SERVICE_URL: user.url } });
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
