// Tasks and comments through the network: creating with defaults, reading, updating with and
// without a field mask, optimistic concurrency with etags, assignees (members only), tags,
// bad input, who may write, and the activity log of every change.
import { timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { beforeAll, describe, expect, it } from "vitest";
import {
  MemberRole,
  type Project,
  TaskPriority,
  TaskStatus,
} from "../../gen/protomesh/task/v1/task_pb.ts";
import { type TestUser, useTaskService } from "../../test/support/task-service.ts";
import { expectCode } from "../../test/support/user-service.ts";

const svc = useTaskService();
let owner: TestUser;
let editor: TestUser;
let viewer: TestUser;
let outsider: TestUser;
let project: Project;

beforeAll(async () => {
  [owner, editor, viewer, outsider] = await svc.signUp("owner", "editor", "viewer", "outsider");
  project = await svc.projectWith(owner, "Tasks", [
    [editor, MemberRole.EDITOR],
    [viewer, MemberRole.VIEWER],
  ]);
});

const due = new Date("2031-03-04T05:06:07.000Z");

describe("a task", () => {
  it("is created with defaults for what the request leaves out, and read back as written", async () => {
    const created = await svc.connect.createTask(
      { projectId: project.id, task: { title: " Write the spec ", createdBy: outsider.id } },
      editor.call,
    );
    expect(created).toMatchObject({
      projectId: project.id,
      title: "Write the spec",
      description: "",
      status: TaskStatus.TODO,
      priority: TaskPriority.MEDIUM,
      assigneeIds: [],
      tags: [],
      commentCount: 0,
      createdBy: editor.id,
      updatedBy: editor.id,
    });
    expect(created.dueTime).toBeUndefined();
    expect(await svc.grpc.getTask({ id: created.id }, viewer.call)).toEqual(created);
  });

  it("keeps its assignees and tags in the order given", async () => {
    const created = await svc.connect.createTask(
      {
        projectId: project.id,
        task: {
          title: "Ordered",
          status: TaskStatus.IN_PROGRESS,
          priority: TaskPriority.URGENT,
          dueTime: timestampFromDate(due),
          assigneeIds: [viewer.id, owner.id],
          tags: ["zeta", "alpha", "Mid"],
        },
      },
      owner.call,
    );
    const read = await svc.connect.getTask({ id: created.id }, owner.call);
    expect(read).toMatchObject({
      status: TaskStatus.IN_PROGRESS,
      priority: TaskPriority.URGENT,
      assigneeIds: [viewer.id, owner.id],
      tags: ["zeta", "alpha", "Mid"],
    });
    expect(read.dueTime && timestampDate(read.dueTime)).toEqual(due);
  });

  it("refuses bad input with InvalidArgument saying what to fix", async () => {
    const create = (task: Parameters<typeof svc.connect.createTask>[0]["task"]) =>
      svc.grpc.createTask({ projectId: project.id, task }, editor.call);
    await expectCode(create({ title: "" }), Code.InvalidArgument, /title is required/);
    await expectCode(
      create({ title: "t".repeat(201) }),
      Code.InvalidArgument,
      /title must be at most 200/,
    );
    await expectCode(
      create({ title: "ok", description: "d".repeat(10_001) }),
      Code.InvalidArgument,
      /description must be at most 10000/,
    );
    await expectCode(
      create({ title: "ok", status: 9 as TaskStatus }),
      Code.InvalidArgument,
      /status 9 is not a TaskStatus/,
    );
    await expectCode(
      create({ title: "ok", priority: -1 as TaskPriority }),
      Code.InvalidArgument,
      /priority -1 is not a TaskPriority/,
    );
    await expectCode(
      create({ title: "ok", tags: Array.from({ length: 21 }, (_, i) => `t${i}`) }),
      Code.InvalidArgument,
      /at most 20 tags/,
    );
    await expectCode(create({ title: "ok", tags: ["a", "a"] }), Code.InvalidArgument, /"a" twice/);
    await expectCode(
      create({ title: "ok", tags: ["x".repeat(51)] }),
      Code.InvalidArgument,
      /at most 50/,
    );
    await expectCode(
      create({ title: "ok", assigneeIds: ["nope"] }),
      Code.InvalidArgument,
      /assignee_ids\[0\] must be a UUID/,
    );
    await expectCode(
      create({ title: "ok", assigneeIds: [owner.id, owner.id] }),
      Code.InvalidArgument,
      /twice/,
    );
    await expectCode(
      svc.grpc.createTask({ projectId: "", task: { title: "ok" } }, editor.call),
      Code.InvalidArgument,
      /project_id is required/,
    );
  });

  it("may only be assigned to members of its project", async () => {
    await expectCode(
      svc.connect.createTask(
        { projectId: project.id, task: { title: "Help", assigneeIds: [outsider.id] } },
        editor.call,
      ),
      Code.FailedPrecondition,
      new RegExp(`assignee ${outsider.id} is not a member`),
    );
    const task = await svc.connect.createTask(
      { projectId: project.id, task: { title: "Help" } },
      editor.call,
    );
    await expectCode(
      svc.connect.updateTask(
        {
          task: { id: task.id, assigneeIds: [editor.id, outsider.id] },
          updateMask: { paths: ["assignee_ids"] },
        },
        editor.call,
      ),
      Code.FailedPrecondition,
      /is not a member/,
    );
    expect((await svc.connect.getTask({ id: task.id }, editor.call)).assigneeIds).toEqual([]);
  });

  it("is changed by owners and editors, never by viewers", async () => {
    const task = await svc.connect.createTask(
      { projectId: project.id, task: { title: "Guarded" } },
      owner.call,
    );
    await expectCode(
      svc.connect.createTask({ projectId: project.id, task: { title: "Mine" } }, viewer.call),
      Code.PermissionDenied,
      /only owners and editors/,
    );
    await expectCode(
      svc.connect.updateTask(
        { task: { id: task.id, title: "Viewer's" }, updateMask: { paths: ["title"] } },
        viewer.call,
      ),
      Code.PermissionDenied,
      /you are a viewer/,
    );
    await expectCode(
      svc.connect.deleteTask({ id: task.id }, viewer.call),
      Code.PermissionDenied,
      /viewer/,
    );
    await expectCode(
      svc.connect.createComment({ taskId: task.id, comment: { body: "hi" } }, viewer.call),
      Code.PermissionDenied,
      /viewer/,
    );
    const edited = await svc.connect.updateTask(
      { task: { id: task.id, title: "Edited" }, updateMask: { paths: ["title"] } },
      editor.call,
    );
    expect(edited).toMatchObject({ title: "Edited", updatedBy: editor.id, createdBy: owner.id });
  });
});

describe("UpdateTask", () => {
  it("changes only the fields of the mask", async () => {
    const task = await svc.connect.createTask(
      {
        projectId: project.id,
        task: { title: "Masked", description: "keep", tags: ["a"], assigneeIds: [editor.id] },
      },
      editor.call,
    );
    const updated = await svc.connect.updateTask(
      {
        task: {
          id: task.id,
          status: TaskStatus.DONE,
          title: "ignored",
          dueTime: timestampFromDate(due),
        },
        updateMask: { paths: ["status", "due_time"] },
      },
      editor.call,
    );
    expect(updated).toMatchObject({
      title: "Masked",
      description: "keep",
      status: TaskStatus.DONE,
      tags: ["a"],
      assigneeIds: [editor.id],
    });
    expect(updated.dueTime && timestampDate(updated.dueTime)).toEqual(due);
    // Clearing the due date: in the mask, unset in the task.
    const cleared = await svc.connect.updateTask(
      { task: { id: task.id }, updateMask: { paths: ["due_time"] } },
      editor.call,
    );
    expect(cleared.dueTime).toBeUndefined();
    expect(cleared.status).toBe(TaskStatus.DONE);
  });

  it("replaces every updatable field when the mask is empty", async () => {
    const task = await svc.connect.createTask(
      {
        projectId: project.id,
        task: { title: "Full", description: "old", tags: ["x"], priority: TaskPriority.HIGH },
      },
      editor.call,
    );
    const replaced = await svc.connect.updateTask(
      { task: { id: task.id, title: "Replaced" } },
      editor.call,
    );
    expect(replaced).toMatchObject({
      title: "Replaced",
      description: "",
      tags: [],
      priority: TaskPriority.MEDIUM,
      status: TaskStatus.TODO,
    });
    await expectCode(
      svc.connect.updateTask({ task: { id: task.id } }, editor.call),
      Code.InvalidArgument,
      /title is required/,
    );
  });

  it("refuses paths that are not updatable, and accepts etag among them", async () => {
    const task = await svc.connect.createTask(
      { projectId: project.id, task: { title: "Paths" } },
      editor.call,
    );
    for (const path of ["comment_count", "project_id", "created_by", "nonsense"]) {
      await expectCode(
        svc.connect.updateTask(
          { task: { id: task.id }, updateMask: { paths: [path] } },
          editor.call,
        ),
        Code.InvalidArgument,
        new RegExp(`"${path}" cannot be updated`),
      );
    }
    const updated = await svc.connect.updateTask(
      {
        task: { id: task.id, title: "With etag", etag: task.etag },
        updateMask: { paths: ["title", "etag"] },
      },
      editor.call,
    );
    expect(updated.title).toBe("With etag");
  });

  it("refuses a stale etag with Aborted, so concurrent writers never overwrite each other", async () => {
    const task = await svc.connect.createTask(
      { projectId: project.id, task: { title: "Contended" } },
      editor.call,
    );
    // Ten writers that all read the same version: exactly one wins, the others must re-read.
    const results = await Promise.allSettled(
      Array.from({ length: 10 }, (_, i) =>
        svc.connect.updateTask(
          {
            task: { id: task.id, title: `Writer ${i}`, etag: task.etag },
            updateMask: { paths: ["title"] },
          },
          i % 2 === 0 ? editor.call : owner.call,
        ),
      ),
    );
    const won = results.filter((r) => r.status === "fulfilled");
    const lost = results.filter((r) => r.status === "rejected");
    expect(won).toHaveLength(1);
    expect(lost.map((r) => ConnectError.from(r.reason).code)).toEqual(Array(9).fill(Code.Aborted));
    const current = await svc.connect.getTask({ id: task.id }, editor.call);
    expect(current.title).toBe(won[0]?.value.title);
    expect(current.etag).toBe(won[0]?.value.etag);
    await expectCode(
      svc.connect.deleteTask({ id: task.id, etag: task.etag }, editor.call),
      Code.Aborted,
      /has changed since etag/,
    );
    await svc.connect.deleteTask({ id: task.id, etag: current.etag }, editor.call);
    await expectCode(svc.connect.getTask({ id: task.id }, editor.call), Code.NotFound, /not found/);
  });

  it("applies updates without an etag one after the other, losing none", async () => {
    const task = await svc.connect.createTask(
      { projectId: project.id, task: { title: "Counter" } },
      editor.call,
    );
    await Promise.all(
      ["a", "b", "c", "d", "e"].map((tag) =>
        svc.connect.updateTask(
          { task: { id: task.id, tags: [tag] }, updateMask: { paths: ["tags"] } },
          editor.call,
        ),
      ),
    );
    const { entries } = await svc.connect.listActivity(
      { projectId: project.id, pageSize: 5 },
      owner.call,
    );
    // Five updates, each from the tags the one before it left.
    const changes = entries.map((e) => e.changes[0]).reverse();
    expect(changes.map((c) => c?.before)).toEqual([
      "[]",
      ...changes.slice(0, 4).map((c) => c?.after),
    ]);
  });
});

describe("comments", () => {
  it("are added by editors, listed oldest first in pages, counted, and change the task's etag", async () => {
    const task = await svc.connect.createTask(
      { projectId: project.id, task: { title: "Discuss" } },
      editor.call,
    );
    const bodies = ["first", "second", "third"];
    for (const body of bodies) {
      await svc.connect.createComment({ taskId: task.id, comment: { body } }, owner.call);
    }
    const page = await svc.connect.listComments({ taskId: task.id, pageSize: 2 }, viewer.call);
    expect(page.comments.map((c) => c.body)).toEqual(["first", "second"]);
    expect(page.comments[0]).toMatchObject({ taskId: task.id, authorId: owner.id });
    const rest = await svc.connect.listComments(
      { taskId: task.id, pageSize: 2, pageToken: page.nextPageToken },
      viewer.call,
    );
    expect(rest.comments.map((c) => c.body)).toEqual(["third"]);
    const after = await svc.connect.getTask({ id: task.id }, viewer.call);
    expect(after.commentCount).toBe(3);
    expect(after.etag).not.toBe(task.etag);
    await expectCode(
      svc.connect.createComment(
        { taskId: task.id, comment: { body: "b".repeat(5001) } },
        owner.call,
      ),
      Code.InvalidArgument,
      /body must be at most 5000/,
    );
    await expectCode(
      svc.connect.listComments({ taskId: task.id, pageToken: "forged.token" }, owner.call),
      Code.InvalidArgument,
      /invalid page_token/,
    );
  });
});

describe("the activity log", () => {
  it("records who changed which fields from what to what, newest first", async () => {
    const task = await svc.connect.createTask(
      { projectId: project.id, task: { title: "Logged", assigneeIds: [editor.id] } },
      editor.call,
    );
    await svc.connect.updateTask(
      {
        task: {
          id: task.id,
          status: TaskStatus.IN_PROGRESS,
          title: "Logged",
          dueTime: timestampFromDate(due),
        },
        updateMask: { paths: ["status", "title", "due_time"] },
      },
      owner.call,
    );
    await svc.connect.deleteTask({ id: task.id }, owner.call);
    const { entries } = await svc.connect.listActivity(
      { projectId: project.id, pageSize: 3 },
      viewer.call,
    );
    expect(entries.map((e) => [e.subjectId, e.action, e.actorId])).toEqual([
      [task.id, "deleted", owner.id],
      [task.id, "updated", owner.id],
      [task.id, "created", editor.id],
    ]);
    // The unchanged title is not a change.
    expect(
      entries[1]?.changes.map((c) => ({ field: c.field, before: c.before, after: c.after })),
    ).toEqual([
      { field: "status", before: '"TASK_STATUS_TODO"', after: '"TASK_STATUS_IN_PROGRESS"' },
      { field: "due_time", before: "", after: '"2031-03-04T05:06:07Z"' },
    ]);
  });

  it("pages with tokens that cannot be forged or moved to another project", async () => {
    const first = await svc.connect.listActivity(
      { projectId: project.id, pageSize: 2 },
      owner.call,
    );
    expect(first.nextPageToken).not.toBe("");
    const other = await svc.connect.createProject({ project: { name: "Other" } }, owner.call);
    await expectCode(
      svc.connect.listActivity({ projectId: other.id, pageToken: first.nextPageToken }, owner.call),
      Code.InvalidArgument,
      /invalid page_token/,
    );
    const [body = "", mac = ""] = first.nextPageToken.split(".");
    const tampered = `${Buffer.from(JSON.stringify([1, "x"])).toString("base64url")}.${mac}`;
    await expectCode(
      svc.connect.listActivity({ projectId: project.id, pageToken: tampered }, owner.call),
      Code.InvalidArgument,
      /invalid page_token/,
    );
    expect(body).not.toBe("");
  });
});
