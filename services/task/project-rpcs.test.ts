// Projects and their members through the network: who sees and changes what (owners, editors,
// viewers, strangers, admins), etags, archiving, deletion, ListProjects and ListMembers paging,
// the last-owner rule, and the activity the changes leave.
import { Code } from "@connectrpc/connect";
import { beforeAll, describe, expect, it } from "vitest";
import { MemberRole, type Project } from "../../gen/protomesh/task/v1/task_pb.ts";
import { type TestUser, useTaskService } from "../../test/support/task-service.ts";
import { expectCode } from "../../test/support/user-service.ts";

const svc = useTaskService();
let owner: TestUser;
let editor: TestUser;
let viewer: TestUser;
let stranger: TestUser;

beforeAll(async () => {
  [owner, editor, viewer, stranger] = await svc.signUp("owner", "editor", "viewer", "stranger");
});

/** A project of `owner` with `editor` and `viewer` as members. */
const sharedProject = () =>
  svc.projectWith(owner, "Shared", [
    [editor, MemberRole.EDITOR],
    [viewer, MemberRole.VIEWER],
  ]);

describe("a project", () => {
  it("is created with its caller as owner and first member", async () => {
    const project = await svc.connect.createProject(
      { project: { name: "  Launch  ", description: "Ship it", ownerId: stranger.id } },
      owner.call,
    );
    expect(project).toMatchObject({
      name: "Launch",
      description: "Ship it",
      archived: false,
      ownerId: owner.id,
    });
    expect(project.id).toMatch(/^[\da-f-]{36}$/);
    expect(project.etag).not.toBe("");
    const { members } = await svc.connect.listMembers({ projectId: project.id }, owner.call);
    expect(members).toEqual([
      expect.objectContaining({ userId: owner.id, role: MemberRole.OWNER, projectId: project.id }),
    ]);
  });

  it("needs a name of 1 to 100 characters and a description of at most 2000", async () => {
    await expectCode(
      svc.connect.createProject({ project: { name: "   " } }, owner.call),
      Code.InvalidArgument,
      /name is required/,
    );
    await expectCode(
      svc.connect.createProject({ project: { name: "x".repeat(101) } }, owner.call),
      Code.InvalidArgument,
      /name must be at most 100 characters/,
    );
    await expectCode(
      svc.grpc.createProject(
        { project: { name: "ok", description: "d".repeat(2001) } },
        owner.call,
      ),
      Code.InvalidArgument,
      /description must be at most 2000 characters/,
    );
    // Characters, not bytes: 100 emoji are a valid name.
    const emoji = await svc.connect.createProject(
      { project: { name: "🚀".repeat(100) } },
      owner.call,
    );
    expect([...emoji.name]).toHaveLength(100);
  });

  it("is seen by its members only: a stranger gets NotFound, as for a project that does not exist", async () => {
    const project = await sharedProject();
    for (const user of [owner, editor, viewer]) {
      expect((await svc.connect.getProject({ id: project.id }, user.call)).id).toBe(project.id);
    }
    const hidden = await expectCode(
      svc.connect.getProject({ id: project.id }, stranger.call),
      Code.NotFound,
      /not found/,
    );
    const missing = await expectCode(
      svc.connect.getProject({ id: "00000000-0000-4000-8000-000000000000" }, stranger.call),
      Code.NotFound,
      /not found/,
    );
    // The same words whether or not it exists, but for the id asked about.
    expect(hidden.rawMessage.replace(project.id, "ID")).toBe(
      missing.rawMessage.replace("00000000-0000-4000-8000-000000000000", "ID"),
    );
    await expectCode(
      svc.connect.getProject({ id: "not-a-uuid" }, owner.call),
      Code.InvalidArgument,
      /id must be a UUID/,
    );
  });

  it("is renamed and archived by owners only, with a field mask", async () => {
    const project = await sharedProject();
    for (const user of [editor, viewer]) {
      await expectCode(
        svc.connect.updateProject(
          { project: { id: project.id, name: "Mine" }, updateMask: { paths: ["name"] } },
          user.call,
        ),
        Code.PermissionDenied,
        /only owners/,
      );
    }
    const renamed = await svc.connect.updateProject(
      {
        project: { id: project.id, name: "Renamed", description: "ignored" },
        updateMask: { paths: ["name"] },
      },
      owner.call,
    );
    expect(renamed).toMatchObject({ name: "Renamed", description: "", archived: false });
    expect(renamed.etag).not.toBe(project.etag);
    const archived = await svc.connect.updateProject(
      { project: { id: project.id, archived: true }, updateMask: { paths: ["archived"] } },
      owner.call,
    );
    expect(archived).toMatchObject({ name: "Renamed", archived: true });
    await expectCode(
      svc.connect.updateProject(
        { project: { id: project.id }, updateMask: { paths: ["owner_id"] } },
        owner.call,
      ),
      Code.InvalidArgument,
      /"owner_id" cannot be updated/,
    );
  });

  it("replaces every updatable field when the mask is empty", async () => {
    const project = await svc.connect.createProject(
      { project: { name: "Before", description: "old" } },
      owner.call,
    );
    const replaced = await svc.connect.updateProject(
      { project: { id: project.id, name: "After" } },
      owner.call,
    );
    expect(replaced).toMatchObject({ name: "After", description: "", archived: false });
  });

  it("refuses an update or a delete with a stale etag: Aborted, never a silent overwrite", async () => {
    const project = await svc.connect.createProject({ project: { name: "Race" } }, owner.call);
    const first = await svc.connect.updateProject(
      {
        project: { id: project.id, name: "First", etag: project.etag },
        updateMask: { paths: ["name"] },
      },
      owner.call,
    );
    await expectCode(
      svc.connect.updateProject(
        {
          project: { id: project.id, name: "Second", etag: project.etag },
          updateMask: { paths: ["name"] },
        },
        owner.call,
      ),
      Code.Aborted,
      /has changed since etag/,
    );
    await expectCode(
      svc.connect.deleteProject({ id: project.id, etag: project.etag }, owner.call),
      Code.Aborted,
      /has changed since etag/,
    );
    expect((await svc.connect.getProject({ id: project.id }, owner.call)).name).toBe("First");
    await svc.connect.deleteProject({ id: project.id, etag: first.etag }, owner.call);
    await expectCode(
      svc.connect.getProject({ id: project.id }, owner.call),
      Code.NotFound,
      /not found/,
    );
  });

  it("keeps its etag when an update changes nothing", async () => {
    const project = await svc.connect.createProject({ project: { name: "Same" } }, owner.call);
    const same = await svc.connect.updateProject(
      { project: { id: project.id, name: "Same" }, updateMask: { paths: ["name"] } },
      owner.call,
    );
    expect(same.etag).toBe(project.etag);
  });

  it("is deleted by owners only, with its tasks", async () => {
    const project = await sharedProject();
    const task = await svc.connect.createTask(
      { projectId: project.id, task: { title: "Doomed" } },
      editor.call,
    );
    await expectCode(
      svc.connect.deleteProject({ id: project.id }, editor.call),
      Code.PermissionDenied,
      /only owners/,
    );
    await svc.connect.deleteProject({ id: project.id }, owner.call);
    await expectCode(svc.connect.getTask({ id: task.id }, owner.call), Code.NotFound, /not found/);
  });
});

describe("ListProjects", () => {
  it("lists the caller's projects, newest first, in pages, hiding archived ones unless asked", async () => {
    const [user] = await svc.signUp("lister");
    const made: Project[] = [];
    for (let i = 0; i < 5; i++) {
      made.push(await svc.connect.createProject({ project: { name: `P${i}` } }, user.call));
    }
    await svc.connect.updateProject(
      { project: { id: made[1]?.id ?? "", archived: true }, updateMask: { paths: ["archived"] } },
      user.call,
    );
    // Someone else's project, which the user does not see.
    await svc.connect.createProject({ project: { name: "Other" } }, owner.call);
    const first = await svc.connect.listProjects({ pageSize: 2 }, user.call);
    expect(first.projects.map((p) => p.name)).toEqual(["P4", "P3"]);
    const second = await svc.connect.listProjects(
      { pageSize: 2, pageToken: first.nextPageToken },
      user.call,
    );
    expect(second.projects.map((p) => p.name)).toEqual(["P2", "P0"]);
    expect(second.nextPageToken).toBe("");
    const all = await svc.connect.listProjects({ showArchived: true }, user.call);
    expect(all.projects.map((p) => p.name)).toEqual(["P4", "P3", "P2", "P1", "P0"]);
    // A token is the caller's own: another user cannot continue their list.
    await expectCode(
      svc.connect.listProjects({ pageSize: 2, pageToken: first.nextPageToken }, owner.call),
      Code.InvalidArgument,
      /invalid page_token/,
    );
  });
});

describe("members", () => {
  it("are added by owners only, must be users, and only once", async () => {
    const project = await sharedProject();
    const [newcomer] = await svc.signUp("newcomer");
    await expectCode(
      svc.connect.addMember(
        { projectId: project.id, member: { userId: newcomer.id, role: MemberRole.VIEWER } },
        editor.call,
      ),
      Code.PermissionDenied,
      /only owners may manage/,
    );
    await expectCode(
      svc.connect.addMember(
        {
          projectId: project.id,
          member: { userId: "00000000-0000-4000-8000-000000000000", role: MemberRole.VIEWER },
        },
        owner.call,
      ),
      Code.InvalidArgument,
      /is not a user/,
    );
    await expectCode(
      svc.connect.addMember({ projectId: project.id, member: { userId: newcomer.id } }, owner.call),
      Code.InvalidArgument,
      /member.role is required/,
    );
    await expectCode(
      svc.grpc.addMember(
        { projectId: project.id, member: { userId: newcomer.id, role: 7 as MemberRole } },
        owner.call,
      ),
      Code.InvalidArgument,
      /is not a MemberRole/,
    );
    const added = await svc.connect.addMember(
      { projectId: project.id, member: { userId: newcomer.id, role: MemberRole.EDITOR } },
      owner.call,
    );
    expect(added).toMatchObject({
      projectId: project.id,
      userId: newcomer.id,
      role: MemberRole.EDITOR,
    });
    await expectCode(
      svc.connect.addMember(
        { projectId: project.id, member: { userId: newcomer.id, role: MemberRole.VIEWER } },
        owner.call,
      ),
      Code.AlreadyExists,
      /already a member/,
    );
    // Now a member, the newcomer sees the project.
    expect((await svc.connect.getProject({ id: project.id }, newcomer.call)).id).toBe(project.id);
  });

  it("are listed in the order they were added, in pages", async () => {
    const project = await sharedProject();
    const first = await svc.connect.listMembers(
      { projectId: project.id, pageSize: 2 },
      viewer.call,
    );
    expect(first.members.map((m) => m.userId)).toEqual([owner.id, editor.id]);
    const rest = await svc.connect.listMembers(
      { projectId: project.id, pageSize: 2, pageToken: first.nextPageToken },
      viewer.call,
    );
    expect(rest.members.map((m) => [m.userId, m.role])).toEqual([[viewer.id, MemberRole.VIEWER]]);
    expect(rest.nextPageToken).toBe("");
  });

  it("may leave; only owners remove others; the last owner stays", async () => {
    const project = await sharedProject();
    await expectCode(
      svc.connect.removeMember({ projectId: project.id, userId: viewer.id }, editor.call),
      Code.PermissionDenied,
      /only owners may manage/,
    );
    await svc.connect.removeMember({ projectId: project.id, userId: viewer.id }, viewer.call);
    await expectCode(
      svc.connect.getProject({ id: project.id }, viewer.call),
      Code.NotFound,
      /not found/,
    );
    await expectCode(
      svc.connect.removeMember({ projectId: project.id, userId: owner.id }, owner.call),
      Code.FailedPrecondition,
      /last owner/,
    );
    await expectCode(
      svc.connect.removeMember({ projectId: project.id, userId: stranger.id }, owner.call),
      Code.NotFound,
      /is not a member/,
    );
    // With a second owner, the first may go.
    await svc.connect.removeMember({ projectId: project.id, userId: editor.id }, owner.call);
    await svc.connect.addMember(
      { projectId: project.id, member: { userId: editor.id, role: MemberRole.OWNER } },
      owner.call,
    );
    await svc.connect.removeMember({ projectId: project.id, userId: owner.id }, editor.call);
    const { members } = await svc.connect.listMembers({ projectId: project.id }, editor.call);
    expect(members.map((m) => m.userId)).toEqual([editor.id]);
  });

  it("change roles by owners only, as a recorded change; the last owner keeps its role", async () => {
    const project = await sharedProject();
    await expectCode(
      svc.connect.updateMember(
        { projectId: project.id, userId: viewer.id, role: MemberRole.EDITOR },
        editor.call,
      ),
      Code.PermissionDenied,
      /only owners may manage/,
    );
    await expectCode(
      svc.connect.updateMember(
        { projectId: project.id, userId: viewer.id, role: MemberRole.EDITOR },
        stranger.call,
      ),
      Code.NotFound,
      /not found/,
    );
    await expectCode(
      svc.grpc.updateMember(
        { projectId: project.id, userId: stranger.id, role: MemberRole.EDITOR },
        owner.call,
      ),
      Code.NotFound,
      /is not a member/,
    );
    await expectCode(
      svc.connect.updateMember({ projectId: project.id, userId: viewer.id }, owner.call),
      Code.InvalidArgument,
      /role/,
    );
    await expectCode(
      svc.connect.updateMember(
        { projectId: project.id, userId: owner.id, role: MemberRole.EDITOR },
        owner.call,
      ),
      Code.FailedPrecondition,
      /last owner/,
    );
    const promoted = await svc.connect.updateMember(
      { projectId: project.id, userId: viewer.id, role: MemberRole.EDITOR },
      owner.call,
    );
    expect(promoted).toMatchObject({ userId: viewer.id, role: MemberRole.EDITOR });
    await svc.connect.createTask(
      { projectId: project.id, task: { title: "Now I can" } },
      viewer.call,
    );
    const { entries } = await svc.connect.listActivity({ projectId: project.id }, owner.call);
    expect(entries[1]).toEqual(
      expect.objectContaining({
        subjectType: "member",
        subjectId: viewer.id,
        action: "updated",
        changes: [expect.objectContaining({ field: "role" })],
      }),
    );
    // With a second owner, the first may step down.
    await svc.connect.updateMember(
      { projectId: project.id, userId: editor.id, role: MemberRole.OWNER },
      owner.call,
    );
    const demoted = await svc.connect.updateMember(
      { projectId: project.id, userId: owner.id, role: MemberRole.VIEWER },
      owner.call,
    );
    expect(demoted.role).toBe(MemberRole.VIEWER);
  });

  it("leave their tasks when they leave: each task loses the assignee, as a recorded change", async () => {
    const project = await sharedProject();
    const task = await svc.connect.createTask(
      {
        projectId: project.id,
        task: { title: "Shared work", assigneeIds: [editor.id, viewer.id] },
      },
      owner.call,
    );
    await svc.connect.removeMember({ projectId: project.id, userId: viewer.id }, owner.call);
    const after = await svc.connect.getTask({ id: task.id }, owner.call);
    expect(after.assigneeIds).toEqual([editor.id]);
    expect(after.etag).not.toBe(task.etag);
    const { entries } = await svc.connect.listActivity({ projectId: project.id }, owner.call);
    expect(entries.slice(0, 2)).toEqual([
      expect.objectContaining({ subjectType: "member", subjectId: viewer.id, action: "deleted" }),
      expect.objectContaining({
        subjectType: "task",
        subjectId: task.id,
        action: "updated",
        changes: [
          expect.objectContaining({
            field: "assignee_ids",
            before: JSON.stringify([editor.id, viewer.id]),
            after: JSON.stringify([editor.id]),
          }),
        ],
      }),
    ]);
  });
});

describe("a system admin", () => {
  it("reads every project without being a member, and changes nothing there", async () => {
    const admin = await svc.signUpAdmin();
    const project = await sharedProject();
    expect((await svc.connect.getProject({ id: project.id }, admin.call)).id).toBe(project.id);
    const { members } = await svc.connect.listMembers({ projectId: project.id }, admin.call);
    expect(members).toHaveLength(3);
    await expectCode(
      svc.connect.createTask({ projectId: project.id, task: { title: "Nope" } }, admin.call),
      Code.PermissionDenied,
      /admin who is not a member/,
    );
    await expectCode(
      svc.connect.getProject({ id: "00000000-0000-4000-8000-000000000000" }, admin.call),
      Code.NotFound,
      /not found/,
    );
  });
});
