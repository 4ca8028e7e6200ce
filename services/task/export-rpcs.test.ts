// The CSV exports through the network: every task once, in creation order, with RFC 4180
// quoting of awkward text, in chunks that each stay far below the message limit; and the
// activity log as CSV.
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import { beforeAll, describe, expect, it } from "vitest";
import {
  MemberRole,
  type Project,
  TaskPriority,
  TaskStatus,
} from "../../gen/protomesh/task/v1/task_pb.ts";
import { parseCsv, type TestUser, useTaskService } from "../../test/support/task-service.ts";
import { expectCode } from "../../test/support/user-service.ts";
import { taskColumns } from "./export-rpcs.ts";
import { seedTasks } from "./seed.ts";

const svc = useTaskService();
let owner: TestUser;
let viewer: TestUser;
let project: Project;

beforeAll(async () => {
  [owner, viewer] = await svc.signUp("owner", "viewer");
  project = await svc.projectWith(owner, "Exported", [[viewer, MemberRole.VIEWER]]);
});

/** Reads a download: its messages' content types and sizes, and the whole text. */
async function download(stream: AsyncIterable<{ contentType: string; data: Uint8Array }>) {
  const types: string[] = [];
  const sizes: number[] = [];
  const chunks: Buffer[] = [];
  for await (const message of stream) {
    types.push(message.contentType);
    sizes.push(message.data.byteLength);
    chunks.push(Buffer.from(message.data));
  }
  return { types, sizes, text: Buffer.concat(chunks).toString("utf8") };
}

describe("ExportTasks", () => {
  it("streams every task as CSV: a header, one row each, oldest first, awkward text quoted", async () => {
    const awkward = await svc.connect.createTask(
      {
        projectId: project.id,
        task: {
          title: 'Quote "this", please',
          description: "line one\r\nline two, with comma\nand ünïcödé 🚀",
          status: TaskStatus.IN_PROGRESS,
          priority: TaskPriority.URGENT,
          dueTime: timestampFromDate(new Date("2031-01-02T03:04:05Z")),
          assigneeIds: [owner.id, viewer.id],
          tags: ["a,b", "c"],
        },
      },
      owner.call,
    );
    const formula = await svc.connect.createTask(
      { projectId: project.id, task: { title: '=HYPERLINK("http://evil")' } },
      owner.call,
    );
    // Later than the two above, many more than one batch and one chunk.
    await seedTasks(svc.service.db, {
      projectId: project.id,
      createdBy: owner.id,
      count: 2345,
      assigneeIds: [viewer.id],
      tags: ["seeded"],
      start: new Date(Date.now() + 60_000),
    });

    const { types, sizes, text } = await download(
      svc.grpc.exportTasks({ projectId: project.id }, viewer.call),
    );
    expect(types[0]).toBe("text/csv; charset=utf-8");
    expect(types.slice(1).every((t) => t === "")).toBe(true);
    expect(sizes.length).toBeGreaterThan(3);
    expect(Math.max(...sizes)).toBeLessThan(256 * 1024);
    const rows = parseCsv(text);
    expect(rows[0]?.join(",")).toBe(
      "id,title,description,status,priority,due_time,assignee_ids,tags,attachments,created_by,create_time,update_time",
    );
    expect(rows).toHaveLength(1 + 2 + 2345);
    expect(new Set(rows.slice(1).map((r) => r[0])).size).toBe(2347);
    expect(rows[1]).toEqual([
      awkward.id,
      'Quote "this", please',
      "line one\r\nline two, with comma\nand ünïcödé 🚀",
      "TASK_STATUS_IN_PROGRESS",
      "TASK_PRIORITY_URGENT",
      "2031-01-02T03:04:05.000Z",
      `${owner.id};${viewer.id}`,
      "a,b;c",
      "",
      owner.id,
      expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/),
      expect.stringMatching(/Z$/),
    ]);
    // A spreadsheet shows it as text instead of running it.
    expect(rows[2]?.[0]).toBe(formula.id);
    expect(rows[2]?.[1]).toBe('\'=HYPERLINK("http://evil")');
    expect(rows.at(-1)).toEqual(
      expect.arrayContaining(["Task 2345", "Seeded task number 2345", viewer.id, "seeded"]),
    );
  });

  it("answers a project without tasks with the header alone", async () => {
    const empty = await svc.connect.createProject({ project: { name: "Empty" } }, owner.call);
    const { text } = await download(svc.connect.exportTasks({ projectId: empty.id }, owner.call));
    expect(text).toBe(`${taskColumns.map(([name]) => name).join(",")}\r\n`);
  });

  it("is NotFound for a non-member before anything is sent", async () => {
    const [stranger] = await svc.signUp("stranger");
    await expectCode(
      download(svc.connect.exportTasks({ projectId: project.id }, stranger.call)),
      Code.NotFound,
      /not found/,
    );
  });
});

describe("ExportActivity", () => {
  it("streams the whole log as CSV, oldest first, with each entry's changes as JSON", async () => {
    const own = await svc.connect.createProject({ project: { name: "Logged" } }, owner.call);
    const task = await svc.connect.createTask(
      { projectId: own.id, task: { title: "One, two" } },
      owner.call,
    );
    await svc.connect.updateTask(
      { task: { id: task.id, title: 'Say "three"' }, updateMask: { paths: ["title"] } },
      owner.call,
    );
    const { types, text } = await download(
      svc.connect.exportActivity({ projectId: own.id }, owner.call),
    );
    expect(types[0]).toBe("text/csv; charset=utf-8");
    const rows = parseCsv(text);
    // The header, as the contract spells it.
    expect(rows[0]?.join(",")).toBe(
      "id,create_time,actor_id,subject_type,subject_id,action,changes",
    );
    expect(rows.slice(1).map((r) => [r[3], r[4], r[5]])).toEqual([
      ["project", own.id, "created"],
      ["member", owner.id, "created"],
      ["task", task.id, "created"],
      ["task", task.id, "updated"],
    ]);
    expect(JSON.parse(rows[4]?.[6] ?? "")).toEqual([
      { field: "title", before: '"One, two"', after: '"Say \\"three\\""' },
    ]);
    expect(rows[1]?.[6]).toBe("[]");
  });
});
