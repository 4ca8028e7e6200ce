// Strings with a NUL character, which PostgreSQL text cannot hold, sent to the user and task
// services through the gateway and natively: each is refused as 400 / InvalidArgument naming
// the field, before anything is written, on PGlite and on PostgreSQL alike.
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TaskService } from "../gen/protomesh/task/v1/task_pb.ts";
import { createProcessDatabases } from "./support/database.ts";
import { killAllProcesses, type StartedProcess, startProcess } from "./support/process.ts";

const databases = createProcessDatabases();
let task: StartedProcess;
let gateway: StartedProcess;
let token = "";
let projectId = "";
let taskId = "";

/** One REST call through the gateway with the signed-in user's token (none before login). */
async function rest(method: string, path: string, body?: unknown) {
  const res = await fetch(`${gateway.url}${path}`, {
    method,
    headers: {
      ...(token === "" ? {} : { authorization: `Bearer ${token}` }),
      ...(body === undefined ? {} : { "content-type": "application/json" }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

beforeAll(async () => {
  const user = await startProcess("services/user/main.js", {
    // The suite's account logs in without verifying its email.
    env: { LOGIN_REQUIRE_VERIFIED_EMAIL: "false", ...(await databases.env()) },
    startTimeoutMs: 60_000,
  });
  task = await startProcess("services/task/main.js", {
    env: { USER_SERVICE_URL: user.url, ...(await databases.env()) },
    startTimeoutMs: 60_000,
  });
  gateway = await startProcess("gateway/main.js", {
    env: { USER_SERVICE_URL: user.url, TASK_SERVICE_URL: task.url, RATE_LIMITS: "default=off" },
    startTimeoutMs: 60_000,
  });
  const email = `nul-${process.pid}@example.com`;
  const password = "correct-horse-1";
  expect(
    (await rest("POST", "/v1/auth/register", { email, password, displayName: "Nul" })).status,
  ).toBe(200);
  token = (await rest("POST", "/v1/auth/login", { email, password })).body.accessToken as string;
  projectId = (await rest("POST", "/v1/projects", { name: "Kept" })).body.id as string;
  taskId = (await rest("POST", `/v1/projects/${projectId}/tasks`, { title: "Kept" })).body
    .id as string;
}, 120_000);
afterAll(async () => {
  await killAllProcesses();
  await databases.dropAll();
});

describe("a string with a NUL character", () => {
  it.each<[string, string, string, unknown, string]>([
    [
      "login, without a token",
      "POST",
      "/v1/auth/login",
      { email: "a\0b@x.test", password: "p" },
      "email",
    ],
    [
      "register",
      "POST",
      "/v1/auth/register",
      { email: "a\0@x.test", password: "correct-horse-1" },
      "email",
    ],
    [
      "register's display name",
      "POST",
      "/v1/auth/register",
      { email: "n@x.test", password: "correct-horse-1", displayName: "\0" },
      "display_name",
    ],
    ["refresh", "POST", "/v1/auth/refresh", { refreshToken: "r\0" }, "refresh_token"],
    ["the own profile", "PATCH", "/v1/users/me", { displayName: "Ada\0" }, "user.display_name"],
    ["a new project", "POST", "/v1/projects", { name: "p\0" }, "project.name"],
    [
      "a project's description",
      "PATCH",
      "/v1/projects/{project}",
      { description: "\0" },
      "project.description",
    ],
    ["a new task", "POST", "/v1/projects/{project}/tasks", { title: "t\0" }, "task.title"],
    [
      "a new task's tags",
      "POST",
      "/v1/projects/{project}/tasks",
      { title: "t", tags: ["ok", "b\0"] },
      "task.tags[1]",
    ],
    ["a task's change", "PATCH", "/v1/tasks/{task}", { title: "x\0" }, "task.title"],
    ["a comment", "POST", "/v1/tasks/{task}/comments", { body: "\0" }, "comment.body"],
    ["a task filter", "GET", "/v1/projects/{project}/tasks?tag=%00", undefined, "tag"],
  ])("is refused with 400 naming the field: %s", async (_, method, template, body, field) => {
    const path = template.replace("{project}", projectId).replace("{task}", taskId);
    const signedIn = token;
    if (path.startsWith("/v1/auth/")) token = "";
    const res = await rest(method, path, body).finally(() => {
      token = signedIn;
    });
    expect(res).toEqual({
      status: 400,
      body: {
        code: Code.InvalidArgument,
        message: `${field}: must not contain NUL characters`,
        details: [],
      },
    });
  });

  it("is refused natively too, as InvalidArgument", async () => {
    const client = createClient(
      TaskService,
      createConnectTransport({ baseUrl: task.url, httpVersion: "1.1" }),
    );
    const error = await client
      .createProject(
        { project: { name: "n\0" } },
        { headers: { authorization: `Bearer ${token}` } },
      )
      .then(
        () => undefined,
        (err: unknown) => ConnectError.from(err),
      );
    expect([error?.code, error?.rawMessage]).toEqual([
      Code.InvalidArgument,
      "project.name: must not contain NUL characters",
    ]);
  });

  it("changes nothing: the project, its task and their text are as they were", async () => {
    const projects = await rest("GET", "/v1/projects");
    expect((projects.body.projects as { name: string }[]).map((p) => p.name)).toEqual(["Kept"]);
    const tasks = await rest("GET", `/v1/projects/${projectId}/tasks`);
    expect((tasks.body.tasks as { title: string; tags?: string[] }[]).map((t) => t.title)).toEqual([
      "Kept",
    ]);
    const comments = await rest("GET", `/v1/tasks/${taskId}/comments`);
    expect(comments.body.comments ?? []).toEqual([]);
  });
});
