// Files attached to tasks, checked with the file service running beside the task service:
// one's own files attach and show their names, sizes and types wherever the task is shown;
// another user's file and an unknown id are refused by index; lists are bounded and replaced
// as a whole; changes are logged and exported; and with the file service down, nothing is
// attached unchecked while what is attached is still shown.
import { randomUUID } from "node:crypto";
import { Code } from "@connectrpc/connect";
import { beforeAll, describe, expect, it } from "vitest";
import type { File } from "../../gen/protomesh/file/v1/file_pb.ts";
import { MemberRole, type Project } from "../../gen/protomesh/task/v1/task_pb.ts";
import { parseCsv, type TestUser, useTaskService } from "../../test/support/task-service.ts";
import { expectCode } from "../../test/support/user-service.ts";

const svc = useTaskService();
let owner: TestUser;
let editor: TestUser;
let viewer: TestUser;
let project: Project;
let notes: File;
let photo: File;
let editorsFile: File;

const upload = (user: TestUser, filename: string, contentType: string, text: string) =>
  svc.files.upload(user, { filename, contentType }, Buffer.from(text, "utf8"));

/** What a task shows of a file attached to it. */
const shown = (file: File) => ({
  fileId: file.id,
  filename: file.filename,
  sizeBytes: file.sizeBytes,
  contentType: file.contentType,
});

beforeAll(async () => {
  [owner, editor, viewer] = await svc.signUp("owner", "editor", "viewer");
  project = await svc.projectWith(owner, "Attachments", [
    [editor, MemberRole.EDITOR],
    [viewer, MemberRole.VIEWER],
  ]);
  [notes, photo, editorsFile] = await Promise.all([
    upload(owner, "notes.txt", "text/plain", "some notes"),
    upload(owner, "totals; 2031.csv", "text/csv", "a,b\r\n1,2\r\n"),
    upload(editor, "plan.md", "text/markdown", "# The plan"),
  ]);
});

describe("attaching files to a task", () => {
  it("shows the caller's files, in order, with their names, sizes and types", async () => {
    const created = await svc.connect.createTask(
      { projectId: project.id, task: { title: "Read these", attachmentIds: [photo.id, notes.id] } },
      owner.call,
    );
    const expected = {
      attachmentIds: [photo.id, notes.id],
      attachments: [shown(photo), shown(notes)],
    };
    expect(created).toMatchObject(expected);
    expect(created.attachments[1]).toMatchObject({ sizeBytes: 10n, contentType: "text/plain" });
    expect(await svc.grpc.getTask({ id: created.id }, viewer.call)).toMatchObject(expected);
    const { tasks } = await svc.connect.listTasks({ projectId: project.id }, viewer.call);
    expect(tasks.find((t) => t.id === created.id)).toMatchObject(expected);
  });

  it("refuses another user's file and an unknown id alike, naming the index, and creates nothing", async () => {
    const before = await svc.connect.listTasks(
      { projectId: project.id, includeTotalSize: true },
      owner.call,
    );
    const unknown = randomUUID();
    for (const [foreign, index] of [
      [editorsFile.id, 1],
      [unknown, 2],
    ] as const) {
      const attachmentIds = [notes.id, photo.id].slice(0, index);
      await expectCode(
        svc.connect.createTask(
          {
            projectId: project.id,
            task: { title: "Not mine", attachmentIds: [...attachmentIds, foreign] },
          },
          owner.call,
        ),
        Code.InvalidArgument,
        new RegExp(`^attachment_ids\\[${index}\\]: file ${foreign} not found$`),
      );
    }
    const after = await svc.connect.listTasks(
      { projectId: project.id, includeTotalSize: true },
      owner.call,
    );
    expect(after.totalSize).toBe(before.totalSize);
  });

  it("refuses duplicates, more than 20 files and ids that are not UUIDs", async () => {
    const create = (attachmentIds: string[]) =>
      svc.connect.createTask(
        { projectId: project.id, task: { title: "Bad", attachmentIds } },
        owner.call,
      );
    await expectCode(
      create([notes.id, photo.id, notes.id]),
      Code.InvalidArgument,
      new RegExp(`attachment_ids lists ${notes.id} twice`),
    );
    await expectCode(
      create(Array.from({ length: 21 }, () => randomUUID())),
      Code.InvalidArgument,
      /attachment_ids must hold at most 20 files/,
    );
    await expectCode(
      create([notes.id, "notes.txt"]),
      Code.InvalidArgument,
      /attachment_ids\[1\] must be a UUID/,
    );
  });
});

describe("changing a task's attachments", () => {
  it("replaces the list as a whole; files already attached stay, whoever sends the list", async () => {
    const task = await svc.connect.createTask(
      { projectId: project.id, task: { title: "Shared", attachmentIds: [notes.id, photo.id] } },
      owner.call,
    );
    // The editor keeps the owner's notes (not a file the editor could attach) and adds a file
    // of their own.
    const updated = await svc.connect.updateTask(
      {
        task: { id: task.id, attachmentIds: [editorsFile.id, notes.id] },
        updateMask: { paths: ["attachment_ids"] },
      },
      editor.call,
    );
    expect(updated.attachments).toMatchObject([shown(editorsFile), shown(notes)]);
    expect(updated.etag).not.toBe(task.etag);
    expect((await svc.connect.getTask({ id: task.id }, owner.call)).attachmentIds).toEqual([
      editorsFile.id,
      notes.id,
    ]);
    // The photo, once removed, is attached anew: the editor may not.
    await expectCode(
      svc.connect.updateTask(
        {
          task: { id: task.id, attachmentIds: [photo.id] },
          updateMask: { paths: ["attachment_ids"] },
        },
        editor.call,
      ),
      Code.InvalidArgument,
      new RegExp(`^attachment_ids\\[0\\]: file ${photo.id} not found$`),
    );

    const { entries } = await svc.connect.listActivity(
      { projectId: project.id, pageSize: 1 },
      owner.call,
    );
    expect(entries[0]).toMatchObject({
      subjectId: task.id,
      actorId: editor.id,
      action: "updated",
      changes: [
        {
          field: "attachment_ids",
          before: JSON.stringify([notes.id, photo.id]),
          after: JSON.stringify([editorsFile.id, notes.id]),
        },
      ],
    });

    const cleared = await svc.connect.updateTask(
      { task: { id: task.id, attachmentIds: [] }, updateMask: { paths: ["attachment_ids"] } },
      owner.call,
    );
    expect(cleared).toMatchObject({ attachmentIds: [], attachments: [] });
  });

  it("exports the attached files' names, separated by semicolons", async () => {
    const own = await svc.connect.createProject({ project: { name: "Exported" } }, owner.call);
    await svc.connect.createTask(
      { projectId: own.id, task: { title: "With files", attachmentIds: [notes.id, photo.id] } },
      owner.call,
    );
    let text = "";
    for await (const chunk of svc.connect.exportTasks({ projectId: own.id }, owner.call)) {
      text += Buffer.from(chunk.data).toString("utf8");
    }
    const [header = [], row = []] = parseCsv(text);
    expect(row[header.indexOf("attachments")]).toBe("notes.txt;totals; 2031.csv");
  });
});

// Last: the file service stops here for the rest of the file.
describe("with the file service down", () => {
  it("attaches nothing unchecked (Unavailable, nothing changed) and still shows what is attached", async () => {
    const task = await svc.connect.createTask(
      { projectId: project.id, task: { title: "Before the outage", attachmentIds: [notes.id] } },
      owner.call,
    );
    const before = await svc.connect.listTasks(
      { projectId: project.id, includeTotalSize: true },
      owner.call,
    );
    await svc.files.service.server.close();

    await expectCode(
      svc.connect.updateTask(
        {
          task: { id: task.id, attachmentIds: [notes.id, photo.id] },
          updateMask: { paths: ["attachment_ids"] },
        },
        owner.call,
      ),
      Code.Unavailable,
      new RegExp(`could not look up file ${photo.id} in the file service`),
    );
    await expectCode(
      svc.connect.createTask(
        { projectId: project.id, task: { title: "During the outage", attachmentIds: [photo.id] } },
        owner.call,
      ),
      Code.Unavailable,
      /file service/,
    );

    // Shown from what was kept when attached: reading asks nothing of the file service.
    expect(await svc.connect.getTask({ id: task.id }, owner.call)).toEqual(
      before.tasks.find((t) => t.id === task.id),
    );
    const after = await svc.connect.listTasks(
      { projectId: project.id, includeTotalSize: true },
      owner.call,
    );
    expect(after).toEqual(before);
    // Files already attached need no check: the rest of the task still changes.
    const renamed = await svc.connect.updateTask(
      {
        task: { id: task.id, title: "Renamed", attachmentIds: [notes.id] },
        updateMask: { paths: [] },
      },
      owner.call,
    );
    expect(renamed).toMatchObject({ title: "Renamed", attachments: [shown(notes)] });
  });
});
