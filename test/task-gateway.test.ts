// The task service end to end between real processes (user, file, task, gateway): a project's
// life over REST through the gateway, from creation to paging, a PATCH without a mask, the CSV
// download and the statistics; an uploaded file attached to a task; and the BOLA matrix: a stranger calling every RPC that takes
// an id of someone else's project, its members, tasks or comments gets NotFound, over REST
// through the gateway and natively over Connect and gRPC, and changes nothing.
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MemberRole, TaskService } from "../gen/protomesh/task/v1/task_pb.ts";
import { createProcessDatabases } from "./support/database.ts";
import { killAllProcesses, type StartedProcess, startProcess } from "./support/process.ts";
import { parseCsv } from "./support/task-service.ts";

let gateway: StartedProcess;
let task: StartedProcess;
/** Access tokens by user, and user ids. */
const tokens: Record<"owner" | "viewer" | "stranger", string> = {
  owner: "",
  viewer: "",
  stranger: "",
};
const userIds: Record<"owner" | "viewer" | "stranger", string> = {
  owner: "",
  viewer: "",
  stranger: "",
};

const databases = createProcessDatabases();

beforeAll(async () => {
  // The suite's accounts log in without verifying their email.
  const user = await startProcess("services/user/main.js", {
    env: { LOGIN_REQUIRE_VERIFIED_EMAIL: "false", ...(await databases.env()) },
  });
  const file = await startProcess("services/file/main.js", {
    env: { USER_SERVICE_URL: user.url, ...(await databases.env()) },
  });
  task = await startProcess("services/task/main.js", {
    env: { USER_SERVICE_URL: user.url, FILE_SERVICE_URL: file.url, ...(await databases.env()) },
  });
  gateway = await startProcess("gateway/main.js", {
    env: { USER_SERVICE_URL: user.url, TASK_SERVICE_URL: task.url, FILE_SERVICE_URL: file.url },
  });
  for (const name of ["owner", "viewer", "stranger"] as const) {
    const email = `${name}-${process.pid}@example.com`;
    const registered = await rest("POST", "/v1/auth/register", "", {
      email,
      password: "correct-horse-1",
      displayName: name,
    });
    expect(registered.status, JSON.stringify(registered.body)).toBe(200);
    userIds[name] = (registered.body as { id: string }).id;
    const login = await rest("POST", "/v1/auth/login", "", { email, password: "correct-horse-1" });
    tokens[name] = (login.body as { accessToken: string }).accessToken;
  }
});
afterAll(async () => {
  await killAllProcesses();
  await databases.dropAll();
});

interface RestResult {
  readonly status: number;
  readonly headers: Headers;
  readonly body: unknown;
  readonly text: string;
}

/** One REST call through the gateway, as the given caller's token (none for ""). */
async function rest(
  method: string,
  path: string,
  token: string,
  body?: unknown,
): Promise<RestResult> {
  const res = await fetch(`${gateway.url}${path}`, {
    method,
    headers: {
      ...(token === "" ? {} : { authorization: `Bearer ${token}` }),
      ...(body === undefined ? {} : { "content-type": "application/json" }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  const json = res.headers.get("content-type")?.startsWith("application/json");
  return {
    status: res.status,
    headers: res.headers,
    body: json ? JSON.parse(text) : undefined,
    text,
  };
}

interface RestTask {
  id: string;
  title: string;
  description: string;
  status?: string;
  priority?: string;
  tags?: string[];
  etag: string;
  dueTime?: string;
}

describe("a project's life through the gateway", () => {
  it("creates a project and 25 tasks, pages 10 at a time, PATCHes a status, exports CSV, reads stats", async () => {
    const created = await rest("POST", "/v1/projects", tokens.owner, { name: "Gateway demo" });
    expect(created.status).toBe(200);
    const project = created.body as { id: string; ownerId: string };
    expect(project.ownerId).toBe(userIds.owner);

    const made: RestTask[] = [];
    for (let i = 1; i <= 25; i++) {
      const res = await rest("POST", `/v1/projects/${project.id}/tasks`, tokens.owner, {
        title: `Task ${i}`,
        description: `Details, "quoted", of task ${i}`,
        priority: "TASK_PRIORITY_HIGH",
        tags: ["demo"],
        dueTime: "2031-06-01T09:00:00Z",
      });
      expect(res.status, res.text).toBe(200);
      made.push(res.body as RestTask);
    }

    const pages: RestTask[][] = [];
    let pageToken = "";
    do {
      const query = new URLSearchParams({ pageSize: "10", ...(pageToken ? { pageToken } : {}) });
      const res = await rest("GET", `/v1/projects/${project.id}/tasks?${query}`, tokens.owner);
      expect(res.status, res.text).toBe(200);
      const body = res.body as { tasks: RestTask[]; nextPageToken?: string };
      pages.push(body.tasks);
      pageToken = body.nextPageToken ?? "";
    } while (pageToken !== "");
    expect(pages.map((p) => p.length)).toEqual([10, 10, 5]);
    const listed = pages.flat().map((t) => t.id);
    expect(new Set(listed).size).toBe(25);
    expect(listed).toEqual(made.map((t) => t.id).reverse());

    // PATCH with only a status: the gateway derives the mask, nothing else changes.
    const target = made[6] as RestTask;
    const patched = await rest("PATCH", `/v1/tasks/${target.id}`, tokens.owner, {
      status: "TASK_STATUS_DONE",
    });
    expect(patched.status, patched.text).toBe(200);
    const after = patched.body as RestTask;
    expect(after).toMatchObject({
      status: "TASK_STATUS_DONE",
      title: target.title,
      description: target.description,
      priority: "TASK_PRIORITY_HIGH",
      tags: ["demo"],
      dueTime: "2031-06-01T09:00:00Z",
    });
    expect(after.etag).not.toBe(target.etag);
    // A PATCH carrying the old etag is refused: 409, Aborted.
    const stale = await rest("PATCH", `/v1/tasks/${target.id}`, tokens.owner, {
      title: "Lost update",
      etag: target.etag,
    });
    expect(stale.status).toBe(409);
    expect(stale.body).toMatchObject({ code: Code.Aborted });

    const csv = await rest("GET", `/v1/projects/${project.id}/tasks:export`, tokens.owner);
    expect(csv.status).toBe(200);
    expect(csv.headers.get("content-type")).toBe("text/csv; charset=utf-8");
    expect(csv.headers.get("content-disposition")).toBe(
      `attachment; filename="tasks-${project.id}.csv"`,
    );
    const rows = parseCsv(csv.text);
    expect(rows[0]?.slice(0, 3)).toEqual(["id", "title", "description"]);
    expect(rows).toHaveLength(26);
    expect(rows.slice(1).map((r) => r[0])).toEqual(made.map((t) => t.id));
    expect(rows[7]?.[3]).toBe("TASK_STATUS_DONE");
    expect(rows[1]?.[2]).toBe('Details, "quoted", of task 1');

    // The activity log: the PATCH is the newest entry, with the status before and after.
    const activity = await rest(
      "GET",
      `/v1/projects/${project.id}/activity?pageSize=1`,
      tokens.owner,
    );
    expect(activity.body).toMatchObject({
      entries: [
        {
          subjectType: "task",
          subjectId: target.id,
          action: "updated",
          actorId: userIds.owner,
          changes: [{ field: "status", before: '"TASK_STATUS_TODO"', after: '"TASK_STATUS_DONE"' }],
        },
      ],
    });
    const log = await rest("GET", `/v1/projects/${project.id}/activity:export`, tokens.owner);
    expect(log.headers.get("content-type")).toBe("text/csv; charset=utf-8");
    // Project and owner created, 25 tasks created, one updated; and the header.
    expect(parseCsv(log.text)).toHaveLength(1 + 2 + 25 + 1);

    const stats = await rest("GET", `/v1/projects/${project.id}/stats?weeks=4`, tokens.owner);
    expect(stats.status).toBe(200);
    // The JSON mapping leaves out zero counts.
    const body = stats.body as {
      projectId: string;
      statusCounts: { status: string; count?: string }[];
      completedPerWeek: { weekStart: string; count?: string }[];
    };
    expect(body.projectId).toBe(project.id);
    expect(body.statusCounts.map((s) => [s.status, s.count ?? "0"])).toEqual([
      ["TASK_STATUS_TODO", "24"],
      ["TASK_STATUS_IN_PROGRESS", "0"],
      ["TASK_STATUS_DONE", "1"],
      ["TASK_STATUS_CANCELLED", "0"],
    ]);
    const weeks = body.completedPerWeek.map((w) => w.count ?? "0");
    expect(weeks).toEqual(["0", "0", "0", "1"]);
  });

  it("refuses bad input with 400 and a viewer's writes with 403", async () => {
    const project = (await rest("POST", "/v1/projects", tokens.owner, { name: "Rules" })).body as {
      id: string;
    };
    const added = await rest("POST", `/v1/projects/${project.id}/members`, tokens.owner, {
      userId: userIds.viewer,
      role: "MEMBER_ROLE_VIEWER",
    });
    expect(added.status, added.text).toBe(200);
    const tasks = `/v1/projects/${project.id}/tasks`;
    for (const [body, message] of [
      [{ title: "x".repeat(201) }, /at most 200/],
      [{ title: "ok", status: "TASK_STATUS_SLEEPING" }, /TaskStatus/],
      [{ title: "ok", assigneeIds: [userIds.stranger] }, /is not a member/],
    ] as const) {
      const res = await rest("POST", tasks, tokens.owner, body);
      expect(res.status, res.text).toBe(400);
      expect((res.body as { message: string }).message).toMatch(message);
    }
    const badToken = await rest("GET", `${tasks}?pageToken=not-a-token`, tokens.owner);
    expect(badToken.status).toBe(400);
    expect(badToken.body).toMatchObject({ code: Code.InvalidArgument });
    const viewerWrite = await rest("POST", tasks, tokens.viewer, { title: "Mine" });
    expect(viewerWrite.status).toBe(403);
    expect(viewerWrite.body).toMatchObject({ code: Code.PermissionDenied });
    expect((await rest("GET", tasks, tokens.viewer)).status).toBe(200);
  });
});

describe("attachments through the gateway", () => {
  it("attaches a file uploaded over REST and shows it on the task; another user's file is 400", async () => {
    const upload = async (token: string, filename: string) => {
      const metadata = { "metadata.filename": filename, "metadata.contentType": "text/plain" };
      const res = await fetch(`${gateway.url}/v1/files?${new URLSearchParams(metadata)}`, {
        method: "POST",
        headers: { authorization: `Bearer ${token}`, "content-type": "application/octet-stream" },
        body: `the content of ${filename}`,
      });
      expect(res.status).toBe(200);
      return (await res.json()) as { id: string };
    };
    const mine = await upload(tokens.owner, "brief.txt");
    const theirs = await upload(tokens.stranger, "secret.txt");
    const project = (await rest("POST", "/v1/projects", tokens.owner, { name: "Files" })).body as {
      id: string;
    };
    const tasks = `/v1/projects/${project.id}/tasks`;
    const created = await rest("POST", tasks, tokens.owner, {
      title: "Read the brief",
      attachmentIds: [mine.id],
    });
    expect(created.status, created.text).toBe(200);
    const id = (created.body as { id: string }).id;
    const expected = {
      attachmentIds: [mine.id],
      // int64 is a string in the JSON mapping.
      attachments: [
        { fileId: mine.id, filename: "brief.txt", sizeBytes: "24", contentType: "text/plain" },
      ],
    };
    expect((await rest("GET", `/v1/tasks/${id}`, tokens.owner)).body).toMatchObject(expected);
    expect((await rest("GET", tasks, tokens.owner)).body).toMatchObject({ tasks: [expected] });

    const refused = await rest("PATCH", `/v1/tasks/${id}`, tokens.owner, {
      attachmentIds: [mine.id, theirs.id],
    });
    expect(refused.status).toBe(400);
    expect(refused.body).toMatchObject({
      code: Code.InvalidArgument,
      message: `attachment_ids[1]: file ${theirs.id} not found`,
    });
  });
});

describe("the BOLA matrix: a stranger and someone else's project", () => {
  let projectId = "";
  let taskId = "";
  let commentId = "";
  let etag = "";

  beforeAll(async () => {
    const project = (await rest("POST", "/v1/projects", tokens.owner, { name: "Private" }))
      .body as {
      id: string;
    };
    projectId = project.id;
    await rest("POST", `/v1/projects/${projectId}/members`, tokens.owner, {
      userId: userIds.viewer,
      role: "MEMBER_ROLE_VIEWER",
    });
    const made = (
      await rest("POST", `/v1/projects/${projectId}/tasks`, tokens.owner, { title: "Secret" })
    ).body as RestTask;
    taskId = made.id;
    const comment = (
      await rest("POST", `/v1/tasks/${taskId}/comments`, tokens.owner, { body: "hush" })
    ).body as { id: string };
    commentId = comment.id;
    etag = ((await rest("GET", `/v1/tasks/${taskId}`, tokens.owner)).body as RestTask).etag;
  });

  /** Every REST route that takes an id of the project or of something in it. */
  const routes = (): [string, string, unknown?][] => [
    ["GET", `/v1/projects/${projectId}`],
    ["PATCH", `/v1/projects/${projectId}`, { name: "Taken" }],
    ["DELETE", `/v1/projects/${projectId}`],
    [
      "POST",
      `/v1/projects/${projectId}/members`,
      { userId: userIds.stranger, role: "MEMBER_ROLE_OWNER" },
    ],
    ["GET", `/v1/projects/${projectId}/members`],
    ["DELETE", `/v1/projects/${projectId}/members/${userIds.viewer}`],
    ["DELETE", `/v1/projects/${projectId}/members/${userIds.owner}`],
    ["POST", `/v1/projects/${projectId}/tasks`, { title: "Planted" }],
    ["GET", `/v1/projects/${projectId}/tasks`],
    ["GET", `/v1/tasks/${taskId}`],
    ["PATCH", `/v1/tasks/${taskId}`, { status: "TASK_STATUS_CANCELLED" }],
    ["DELETE", `/v1/tasks/${taskId}`],
    ["POST", `/v1/tasks/${taskId}/comments`, { body: "pwned" }],
    ["GET", `/v1/tasks/${taskId}/comments`],
    ["GET", `/v1/projects/${projectId}/stats`],
    ["GET", `/v1/projects/${projectId}/tasks:export`],
    ["GET", `/v1/projects/${projectId}/activity`],
    ["GET", `/v1/projects/${projectId}/activity:export`],
  ];

  it("gets 404 on every project and task route through the gateway, as for ids that do not exist", async () => {
    const nobody = "00000000-0000-4000-8000-000000000000";
    for (const [method, path, body] of routes()) {
      const res = await rest(method, path, tokens.stranger, body);
      expect(res.status, `${method} ${path}: ${res.text}`).toBe(404);
      expect(res.body, `${method} ${path}`).toMatchObject({ code: Code.NotFound });
      // The answer for an id that exists reads like the one for an id that does not.
      const ghost = await rest(
        method,
        path.replaceAll(projectId, nobody).replaceAll(taskId, nobody),
        tokens.stranger,
        body,
      );
      expect(ghost.status, `${method} ${path} (no such id)`).toBe(404);
      const message = (r: RestResult) =>
        (r.body as { message: string }).message
          .replaceAll(projectId, "ID")
          .replaceAll(taskId, "ID")
          .replaceAll(nobody, "ID");
      expect(message(res)).toBe(message(ghost));
    }
    await expectUntouched();
  });

  it.each([
    ["Connect", () => createConnectTransport({ baseUrl: task.url, httpVersion: "1.1" })],
    ["gRPC", () => createGrpcTransport({ baseUrl: task.url })],
  ])("gets NotFound from every such RPC natively over %s", async (_, transport) => {
    const client = createClient(TaskService, transport());
    const call = { headers: { authorization: `Bearer ${tokens.stranger}` } };
    const calls: [string, () => Promise<unknown>][] = [
      ["GetProject", () => client.getProject({ id: projectId }, call)],
      [
        "UpdateProject",
        () => client.updateProject({ project: { id: projectId, name: "Taken", etag } }, call),
      ],
      ["DeleteProject", () => client.deleteProject({ id: projectId }, call)],
      [
        "AddMember",
        () =>
          client.addMember(
            { projectId, member: { userId: userIds.stranger, role: MemberRole.OWNER } },
            call,
          ),
      ],
      ["ListMembers", () => client.listMembers({ projectId }, call)],
      [
        "UpdateMember",
        () =>
          client.updateMember({ projectId, userId: userIds.viewer, role: MemberRole.OWNER }, call),
      ],
      ["RemoveMember", () => client.removeMember({ projectId, userId: userIds.viewer }, call)],
      ["CreateTask", () => client.createTask({ projectId, task: { title: "Planted" } }, call)],
      ["ListTasks", () => client.listTasks({ projectId }, call)],
      ["GetTask", () => client.getTask({ id: taskId }, call)],
      ["UpdateTask", () => client.updateTask({ task: { id: taskId, title: "Mine" } }, call)],
      ["DeleteTask", () => client.deleteTask({ id: taskId }, call)],
      ["CreateComment", () => client.createComment({ taskId, comment: { body: "pwned" } }, call)],
      ["ListComments", () => client.listComments({ taskId }, call)],
      ["GetProjectStats", () => client.getProjectStats({ projectId }, call)],
      ["ExportTasks", () => drain(client.exportTasks({ projectId }, call))],
      ["ListActivity", () => client.listActivity({ projectId }, call)],
      ["ExportActivity", () => drain(client.exportActivity({ projectId }, call))],
    ];
    // Every RPC of the service that names a project, task or comment is in the matrix.
    const named = calls.map(([name]) => name);
    const idTaking = TaskService.methods
      .map((m) => m.name)
      .filter((name) => !["CreateProject", "ListProjects"].includes(name));
    expect(named.sort()).toEqual(idTaking.sort());
    for (const [name, run] of calls) {
      const error = await run().then(
        () => undefined,
        (err: unknown) => ConnectError.from(err),
      );
      expect(error?.code, `${name}: ${error?.rawMessage}`).toBe(Code.NotFound);
    }
    await expectUntouched();
  });

  /** The owner still sees the project exactly as it was. */
  async function expectUntouched(): Promise<void> {
    const project = await rest("GET", `/v1/projects/${projectId}`, tokens.owner);
    expect(project.body).toMatchObject({ name: "Private" });
    const members = (await rest("GET", `/v1/projects/${projectId}/members`, tokens.owner)).body as {
      members: { userId: string }[];
    };
    expect(members.members.map((m) => m.userId).sort()).toEqual(
      [userIds.owner, userIds.viewer].sort(),
    );
    const tasks = (await rest("GET", `/v1/projects/${projectId}/tasks`, tokens.owner)).body as {
      tasks: RestTask[];
    };
    expect(tasks.tasks.map((t) => [t.id, t.title, t.etag])).toEqual([[taskId, "Secret", etag]]);
    const comments = (await rest("GET", `/v1/tasks/${taskId}/comments`, tokens.owner)).body as {
      comments: { id: string }[];
    };
    expect(comments.comments.map((c) => c.id)).toEqual([commentId]);
  }
});

async function drain(stream: AsyncIterable<unknown>): Promise<void> {
  for await (const _ of stream) {
    // Reading to the end, where an error would surface.
  }
}
