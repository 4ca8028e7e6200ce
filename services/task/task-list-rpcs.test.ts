// ListTasks through the network: every filter, every order in both directions, cursor pages
// that neither repeat nor skip a task while others are added, tokens bound to their query,
// the optional total, and a bounded number of queries per page whatever its size.
import { timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import { beforeAll, describe, expect, it } from "vitest";
import {
  type ListTasksRequest,
  MemberRole,
  type Project,
  type Task,
  type TaskPriority,
  TaskStatus,
} from "../../gen/protomesh/task/v1/task_pb.ts";
import { type TestUser, useTaskService } from "../../test/support/task-service.ts";
import { expectCode } from "../../test/support/user-service.ts";
import { seedTasks } from "./seed.ts";

const svc = useTaskService();
let owner: TestUser;
let helper: TestUser;
let project: Project;
/** The tasks of `project`, as created. */
const tasks: Task[] = [];

const hour = 3600 * 1000;
const base = Date.parse("2030-01-01T00:00:00Z");

beforeAll(async () => {
  [owner, helper] = await svc.signUp("owner", "helper");
  project = await svc.projectWith(owner, "Listed", [[helper, MemberRole.EDITOR]]);
  // Twelve tasks with every kind of value, created one after the other.
  for (let i = 0; i < 12; i++) {
    tasks.push(
      await svc.connect.createTask(
        {
          projectId: project.id,
          task: {
            title: i % 3 === 0 ? `Fix 100% of bug_${i}` : `Task ${i}`,
            description: i === 5 ? "mentions the DATABASE" : "",
            status: (1 + (i % 3)) as TaskStatus, // TODO, IN_PROGRESS, DONE in turn
            priority: (1 + (i % 4)) as TaskPriority,
            // Every fourth task has no due date; the others are due i hours after base, shuffled.
            ...(i % 4 === 3
              ? {}
              : { dueTime: timestampFromDate(new Date(base + ((i * 7) % 12) * hour)) }),
            assigneeIds: i % 2 === 0 ? [helper.id] : [],
            tags: i % 3 === 1 ? ["backend", "urgent"] : ["frontend"],
          },
        },
        owner.call,
      ),
    );
  }
});

/** What a test asks ListTasks for, besides the project and the page token. */
type ListRequest = Partial<
  Omit<ListTasksRequest, "$typeName" | "$unknown" | "projectId" | "pageToken">
>;

/** Every page of a listing, followed token by token. */
async function listAll(req: ListRequest): Promise<Task[][]> {
  const pages: Task[][] = [];
  let pageToken = "";
  do {
    const res = await svc.connect.listTasks(
      { projectId: project.id, ...req, pageToken },
      owner.call,
    );
    pages.push(res.tasks);
    pageToken = res.nextPageToken;
  } while (pageToken !== "");
  return pages;
}

const ids = (list: readonly Task[]) => list.map((t) => t.id);
const dueOf = (t: Task) => (t.dueTime ? timestampDate(t.dueTime).getTime() : undefined);

describe("ListTasks", () => {
  it("lists the newest first by default, in pages of page_size", async () => {
    const pages = await listAll({ pageSize: 5 });
    expect(pages.map((p) => p.length)).toEqual([5, 5, 2]);
    expect(ids(pages.flat())).toEqual(ids([...tasks].reverse()));
    // Pages carry assignees and tags, as GetTask does.
    expect(pages.flat().find((t) => t.id === tasks[4]?.id)).toEqual(tasks[4]);
  });

  it.each([
    ["create_time", (t: Task) => tasks.indexOf(tasks.find((x) => x.id === t.id) as Task)],
    ["priority", (t: Task) => t.priority],
    ["due_time", dueOf],
  ] as const)("sorts by %s both ways, ties by id, without due dates last", async (field, keyOf) => {
    for (const direction of ["", " desc"]) {
      const listed = (await listAll({ orderBy: `${field}${direction}`, pageSize: 4 })).flat();
      const sign = direction === "" ? 1 : -1;
      const expected = [...tasks].sort((a, b) => {
        const [ka, kb] = [keyOf(a), keyOf(b)];
        if (ka === undefined || kb === undefined) {
          if (ka !== kb) return ka === undefined ? 1 : -1;
        } else if (ka !== kb) return sign * (ka - kb);
        return sign * (a.id < b.id ? -1 : 1);
      });
      expect(ids(listed), `${field}${direction}`).toEqual(ids(expected));
    }
  });

  it("sorts by update_time, so a changed task moves to the end", async () => {
    const touched = tasks[0] as Task;
    await svc.connect.updateTask(
      { task: { id: touched.id, description: "touched" }, updateMask: { paths: ["description"] } },
      owner.call,
    );
    const listed = (await listAll({ orderBy: "update_time", pageSize: 5 })).flat();
    expect(listed.at(-1)?.id).toBe(touched.id);
    expect(listed).toHaveLength(tasks.length);
  });

  it("filters by status, assignee, tag, due dates and text, all together", async () => {
    const only = async (req: ListRequest) => ids((await listAll(req)).flat()).sort();
    const expectIds = (list: Task[]) => ids(list).sort();
    expect(await only({ statuses: [TaskStatus.DONE, TaskStatus.TODO] })).toEqual(
      expectIds(tasks.filter((t) => t.status !== TaskStatus.IN_PROGRESS)),
    );
    expect(await only({ assigneeId: helper.id })).toEqual(
      expectIds(tasks.filter((t) => t.assigneeIds.includes(helper.id))),
    );
    expect(await only({ tag: "urgent" })).toEqual(
      expectIds(tasks.filter((t) => t.tags.includes("urgent"))),
    );
    expect(await only({ tag: "Urgent" })).toEqual([]);
    const cut = base + 5 * hour;
    expect(await only({ dueBefore: timestampFromDate(new Date(cut)) })).toEqual(
      expectIds(tasks.filter((t) => (dueOf(t) ?? Infinity) < cut)),
    );
    expect(await only({ dueAfter: timestampFromDate(new Date(cut)) })).toEqual(
      expectIds(tasks.filter((t) => dueOf(t) !== undefined && (dueOf(t) as number) >= cut)),
    );
    // Case-insensitive, in the description too, and % and _ match only themselves.
    expect(await only({ query: "database" })).toEqual(expectIds([tasks[5] as Task]));
    expect(await only({ query: "100%" })).toEqual(
      expectIds(tasks.filter((t) => t.title.includes("100%"))),
    );
    expect(await only({ query: "bug_1" })).toEqual([]);
    expect(await only({ query: "%" })).toHaveLength(4);
    expect(
      await only({
        statuses: [TaskStatus.TODO],
        assigneeId: helper.id,
        tag: "frontend",
        query: "fix",
      }),
    ).toEqual(
      expectIds(
        tasks.filter(
          (t) =>
            t.status === TaskStatus.TODO &&
            t.assigneeIds.includes(helper.id) &&
            t.tags.includes("frontend") &&
            t.title.toLowerCase().includes("fix"),
        ),
      ),
    );
  });

  it("counts the matching tasks across pages when asked", async () => {
    const res = await svc.connect.listTasks(
      { projectId: project.id, pageSize: 2, tag: "frontend", includeTotalSize: true },
      owner.call,
    );
    expect(res.tasks).toHaveLength(2);
    expect(res.totalSize).toBe(tasks.filter((t) => t.tags.includes("frontend")).length);
    const without = await svc.connect.listTasks({ projectId: project.id, pageSize: 2 }, owner.call);
    expect(without.totalSize).toBe(0);
  });

  it("never repeats or skips a task while others are created between pages", async () => {
    const seen: string[] = [];
    let pageToken = "";
    let added = 0;
    do {
      const res = await svc.connect.listTasks(
        { projectId: project.id, pageSize: 3, pageToken },
        owner.call,
      );
      seen.push(...ids(res.tasks));
      pageToken = res.nextPageToken;
      // A newer task: it sorts before the cursor, so it never shifts the pages still to come.
      await svc.connect.createTask(
        { projectId: project.id, task: { title: `Late ${added++}` } },
        helper.call,
      );
    } while (pageToken !== "");
    expect(seen).toEqual(ids([...tasks].reverse()));
    for (const late of (
      await svc.connect.listTasks({ projectId: project.id, query: "Late" }, owner.call)
    ).tasks) {
      await svc.connect.deleteTask({ id: late.id }, owner.call);
    }
  });

  it("refuses a token given with other filters or order, a forged one, and a bad order_by", async () => {
    const first = await svc.connect.listTasks(
      { projectId: project.id, pageSize: 2, tag: "frontend" },
      owner.call,
    );
    for (const changed of [
      { tag: "backend" },
      { tag: "frontend", orderBy: "priority" },
      { tag: "frontend", query: "x" },
    ]) {
      await expectCode(
        svc.connect.listTasks(
          { projectId: project.id, pageToken: first.nextPageToken, ...changed },
          owner.call,
        ),
        Code.InvalidArgument,
        /invalid page_token/,
      );
    }
    await expectCode(
      svc.connect.listTasks(
        { projectId: project.id, pageToken: `${first.nextPageToken}x` },
        owner.call,
      ),
      Code.InvalidArgument,
      /invalid page_token/,
    );
    for (const orderBy of ["title", "priority sideways", "priority desc extra"]) {
      await expectCode(
        svc.connect.listTasks({ projectId: project.id, orderBy }, owner.call),
        Code.InvalidArgument,
        /order_by .* is not supported/,
      );
    }
    await expectCode(
      svc.grpc.listTasks({ projectId: project.id, statuses: [TaskStatus.UNSPECIFIED] }, owner.call),
      Code.InvalidArgument,
      /TASK_STATUS_UNSPECIFIED/,
    );
    await expectCode(
      svc.grpc.listTasks({ projectId: project.id, statuses: [42 as TaskStatus] }, owner.call),
      Code.InvalidArgument,
      /statuses 42 is not a TaskStatus/,
    );
    await expectCode(
      svc.connect.listTasks({ projectId: project.id, query: "q".repeat(201) }, owner.call),
      Code.InvalidArgument,
      /query must be at most 200/,
    );
    await expectCode(
      svc.connect.listTasks({ projectId: project.id, pageSize: -1 }, owner.call),
      Code.InvalidArgument,
      /page_size must not be negative/,
    );
  });
});

describe("a page of tasks", () => {
  it("loads with a fixed number of queries whatever its size: no query per task", async () => {
    const big = await svc.projectWith(owner, "Big", [[helper, MemberRole.EDITOR]]);
    await seedTasks(svc.service.db, {
      projectId: big.id,
      createdBy: owner.id,
      count: 300,
      assigneeIds: [owner.id, helper.id],
      tags: ["one", "two"],
    });
    const listed = await svc.connect.listTasks({ projectId: big.id, pageSize: 5 }, owner.call);
    for (const task of listed.tasks.slice(0, 2)) {
      await svc.connect.createComment({ taskId: task.id, comment: { body: "hello" } }, owner.call);
    }
    const queriesFor = async (pageSize: number) => {
      let result: Task[] = [];
      const queries = await svc.queriesDuring(async () => {
        result = (
          await svc.connect.listTasks(
            { projectId: big.id, pageSize, includeTotalSize: true, assigneeId: owner.id },
            owner.call,
          )
        ).tasks;
      });
      return { queries, tasks: result };
    };
    const small = await queriesFor(2);
    const large = await queriesFor(150);
    expect(small.tasks).toHaveLength(2);
    expect(large.tasks).toHaveLength(150);
    expect(large.tasks.every((t) => t.assigneeIds.includes(owner.id) && t.tags.length === 2)).toBe(
      true,
    );
    expect(large.tasks.filter((t) => t.commentCount > 0).length).toBeGreaterThan(0);
    // Membership, the page, its assignees, its tags, its attachments, the total: six, at any
    // size.
    expect(large.queries).toHaveLength(small.queries.length);
    expect(large.queries.length).toBeLessThanOrEqual(6);
  });
});
