// GetProjectStats through the network, on a clock the test moves: counts by status (zeros
// included), open tasks per assignee, overdue tasks, and tasks completed per week.
import { timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import { beforeAll, describe, expect, it } from "vitest";
import { MemberRole, TaskStatus } from "../../gen/protomesh/task/v1/task_pb.ts";
import { type TestUser, useTaskService } from "../../test/support/task-service.ts";
import { expectCode } from "../../test/support/user-service.ts";
import { weekStart } from "./stats-rpcs.ts";

const svc = useTaskService();
let owner: TestUser;
let ann: TestUser;
let bob: TestUser;

beforeAll(async () => {
  [owner, ann, bob] = await svc.signUp("owner", "ann", "bob");
});

const day = 24 * 3600 * 1000;

describe("weekStart", () => {
  it("is Monday 00:00 UTC of the date's week", () => {
    expect(weekStart(new Date("2030-01-09T15:00:00Z"))).toEqual(new Date("2030-01-07T00:00:00Z"));
    expect(weekStart(new Date("2030-01-07T00:00:00Z"))).toEqual(new Date("2030-01-07T00:00:00Z"));
    // A Sunday belongs to the week that began the Monday before.
    expect(weekStart(new Date("2030-01-13T23:59:59Z"))).toEqual(new Date("2030-01-07T00:00:00Z"));
  });
});

describe("GetProjectStats", () => {
  it("counts tasks by status, open tasks by assignee, overdue ones, and completions per week", async () => {
    // Wednesday of a week; completions happen in this week and two weeks before.
    const now = new Date("2030-01-09T12:00:00Z");
    svc.setNow(new Date(now.getTime() - 14 * day));
    const project = await svc.projectWith(owner, "Stats", [
      [ann, MemberRole.EDITOR],
      [bob, MemberRole.EDITOR],
    ]);
    const make = (title: string, extra: object) =>
      svc.connect.createTask({ projectId: project.id, task: { title, ...extra } }, owner.call);
    const past = timestampFromDate(new Date(now.getTime() - day));
    const future = timestampFromDate(new Date(now.getTime() + day));
    // Done two weeks ago, at creation.
    await make("early", { status: TaskStatus.DONE, assigneeIds: [ann.id] });
    svc.setNow(now);
    await make("overdue a", { dueTime: past, assigneeIds: [ann.id, bob.id] });
    await make("overdue b", {
      status: TaskStatus.IN_PROGRESS,
      dueTime: past,
      assigneeIds: [ann.id],
    });
    await make("not yet", { dueTime: future, assigneeIds: [bob.id] });
    // Past due but closed: not overdue, not open.
    await make("dropped", { status: TaskStatus.CANCELLED, dueTime: past, assigneeIds: [bob.id] });
    const finished = await make("finished", { dueTime: past });
    await svc.connect.updateTask(
      { task: { id: finished.id, status: TaskStatus.DONE }, updateMask: { paths: ["status"] } },
      owner.call,
    );

    const stats = await svc.connect.getProjectStats({ projectId: project.id, weeks: 3 }, bob.call);
    expect(stats.projectId).toBe(project.id);
    expect(stats.statusCounts.map((s) => [s.status, s.count])).toEqual([
      [TaskStatus.TODO, 2n],
      [TaskStatus.IN_PROGRESS, 1n],
      [TaskStatus.DONE, 2n],
      [TaskStatus.CANCELLED, 1n],
    ]);
    expect(stats.assigneeCounts.map((a) => [a.assigneeId, a.count])).toEqual(
      [
        [ann.id, 2n],
        [bob.id, 2n],
      ].sort((x, y) => (x[0] as string).localeCompare(y[0] as string)),
    );
    expect(stats.overdueCount).toBe(2n);
    expect(
      stats.completedPerWeek.map((w) => [
        w.weekStart && timestampDate(w.weekStart).toISOString(),
        w.count,
      ]),
    ).toEqual([
      ["2029-12-24T00:00:00.000Z", 1n],
      ["2029-12-31T00:00:00.000Z", 0n],
      ["2030-01-07T00:00:00.000Z", 1n],
    ]);

    // Reopening a task takes it out of the week it was completed in.
    await svc.connect.updateTask(
      { task: { id: finished.id, status: TaskStatus.TODO }, updateMask: { paths: ["status"] } },
      owner.call,
    );
    const reopened = await svc.connect.getProjectStats({ projectId: project.id }, owner.call);
    expect(reopened.completedPerWeek).toHaveLength(12);
    expect(reopened.completedPerWeek.at(-1)?.count).toBe(0n);
    expect(reopened.overdueCount).toBe(3n);
    svc.setNow(undefined);
  });

  it("answers an empty project with zeros, caps the weeks at 52, and refuses negative ones", async () => {
    const project = await svc.connect.createProject({ project: { name: "Empty" } }, owner.call);
    const stats = await svc.connect.getProjectStats(
      { projectId: project.id, weeks: 500 },
      owner.call,
    );
    expect(stats.statusCounts.map((s) => s.count)).toEqual([0n, 0n, 0n, 0n]);
    expect(stats.assigneeCounts).toEqual([]);
    expect(stats.overdueCount).toBe(0n);
    expect(stats.completedPerWeek).toHaveLength(52);
    await expectCode(
      svc.connect.getProjectStats({ projectId: project.id, weeks: -1 }, owner.call),
      Code.InvalidArgument,
      /weeks must not be negative/,
    );
  });
});
