// Who may see what, checked by what the service does rather than by how long it takes: an
// object of someone else's project and an id that names nothing run the same SQL and get the
// same NotFound, so neither the answer nor its cost tells a stranger which ids exist.
import { randomUUID } from "node:crypto";
import { ConnectError } from "@connectrpc/connect";
import { beforeAll, describe, expect, it } from "vitest";
import { MemberRole, type Project, type Task } from "../../gen/protomesh/task/v1/task_pb.ts";
import { type TestUser, useTaskService } from "../../test/support/task-service.ts";

const svc = useTaskService();
let owner: TestUser;
let viewer: TestUser;
let stranger: TestUser;
let project: Project;
let task: Task;

beforeAll(async () => {
  [owner, viewer, stranger] = await svc.signUp("owner", "viewer", "stranger");
  project = await svc.projectWith(owner, "Private", [[viewer, MemberRole.VIEWER]]);
  task = await svc.connect.createTask(
    { projectId: project.id, task: { title: "Secret" } },
    owner.call,
  );
});

/** What a call by the stranger ran and answered, with the id it named taken out. */
async function probe(id: string, call: (id: string) => Promise<unknown>) {
  let error: ConnectError | undefined;
  const queries = await svc.queriesDuring(async () => {
    error = await call(id).then(
      () => undefined,
      (err: unknown) => ConnectError.from(err),
    );
  });
  return { queries, code: error?.code, message: error?.rawMessage.replace(id, "<id>") };
}

// Every RPC that names an object by id, called by someone who is not a member of its project.
const getTask = (id: string) => svc.connect.getTask({ id }, stranger.call);
const byTaskId: Record<string, (id: string) => Promise<unknown>> = {
  GetTask: getTask,
  UpdateTask: (id) =>
    svc.connect.updateTask(
      { task: { id, title: "Mine" }, updateMask: { paths: ["title"] } },
      stranger.call,
    ),
  DeleteTask: (id) => svc.connect.deleteTask({ id }, stranger.call),
  CreateComment: (id) =>
    svc.connect.createComment({ taskId: id, comment: { body: "hi" } }, stranger.call),
  ListComments: (id) => svc.connect.listComments({ taskId: id }, stranger.call),
};
const byProjectId: Record<string, (id: string) => Promise<unknown>> = {
  GetProject: (id) => svc.connect.getProject({ id }, stranger.call),
  UpdateProject: (id) =>
    svc.connect.updateProject(
      { project: { id, name: "Mine" }, updateMask: { paths: ["name"] } },
      stranger.call,
    ),
  DeleteProject: (id) => svc.connect.deleteProject({ id }, stranger.call),
  CreateTask: (id) =>
    svc.connect.createTask({ projectId: id, task: { title: "x" } }, stranger.call),
  ListTasks: (id) => svc.connect.listTasks({ projectId: id }, stranger.call),
  AddMember: (id) =>
    svc.connect.addMember(
      { projectId: id, member: { userId: stranger.id, role: MemberRole.OWNER } },
      stranger.call,
    ),
  ListMembers: (id) => svc.connect.listMembers({ projectId: id }, stranger.call),
  UpdateMember: (id) =>
    svc.connect.updateMember(
      { projectId: id, userId: viewer.id, role: MemberRole.OWNER },
      stranger.call,
    ),
  RemoveMember: (id) =>
    svc.connect.removeMember({ projectId: id, userId: viewer.id }, stranger.call),
  GetProjectStats: (id) => svc.connect.getProjectStats({ projectId: id }, stranger.call),
  ListActivity: (id) => svc.connect.listActivity({ projectId: id }, stranger.call),
};

describe("an object of someone else's project", () => {
  it("GetTask runs one statement, the same as for an unknown id, and answers the same NotFound", async () => {
    const theirs = await probe(task.id, getTask);
    const unknown = await probe(randomUUID(), getTask);
    expect(theirs).toEqual(unknown);
    expect(theirs.queries).toHaveLength(1);
    expect(theirs).toMatchObject({ code: 5, message: "task <id> not found" });
  });

  it.each(Object.entries(byTaskId))(
    "%s by task id takes the path of an unknown id",
    async (_, call) => {
      const theirs = await probe(task.id, call);
      expect(theirs).toEqual(await probe(randomUUID(), call));
      expect(theirs).toMatchObject({ code: 5, message: "task <id> not found" });
    },
  );

  it.each(Object.entries(byProjectId))(
    "%s by project id takes the path of an unknown id",
    async (_, call) => {
      const theirs = await probe(project.id, call);
      expect(theirs).toEqual(await probe(randomUUID(), call));
      expect(theirs).toMatchObject({ code: 5, message: "project <id> not found" });
    },
  );

  it("is still there for its members", async () => {
    expect(await svc.connect.getTask({ id: task.id }, viewer.call)).toEqual(task);
  });
});
