import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { TaskStatus } from "../../gen/protomesh/task/v1/task_pb.ts";
import { requireIdentity } from "../../kit/auth/identity.ts";
import { parseUuid } from "../../kit/uuid.ts";
import { authorize } from "./access.ts";
import { statusToProto } from "./convert.ts";
import type { StoredStatus } from "./entities.ts";
import type { RpcDeps, TaskRpcs } from "./rpc-deps.ts";

const weekMs = 7 * 24 * 3600 * 1000;
const allStatuses = [
  TaskStatus.TODO,
  TaskStatus.IN_PROGRESS,
  TaskStatus.DONE,
  TaskStatus.CANCELLED,
] as const;

/** Monday 00:00 UTC of the week that holds `date`. */
export function weekStart(date: Date): Date {
  const day = new Date(Date.UTC(date.getUTCFullYear(), date.getUTCMonth(), date.getUTCDate()));
  // getUTCDay: Sunday is 0; Monday starts the week (ISO 8601).
  const sinceMonday = (day.getUTCDay() + 6) % 7;
  return new Date(day.getTime() - sinceMonday * 24 * 3600 * 1000);
}

/** A project's task statistics, computed by the database at request time. */
export function createStatsRpcs({ db, clock }: RpcDeps): TaskRpcs<"getProjectStats"> {
  return {
    async getProjectStats(req, ctx) {
      const projectId = parseUuid(req.projectId, "project_id");
      if (req.weeks < 0) throw new ConnectError("weeks must not be negative", Code.InvalidArgument);
      const weeks = req.weeks === 0 ? 12 : Math.min(req.weeks, 52);
      const em = db.fork();
      await authorize(em, requireIdentity(ctx), projectId, "read");
      const now = clock();
      const firstWeek = new Date(weekStart(now).getTime() - (weeks - 1) * weekMs);
      // Three aggregate queries, each an index range scan of the project's tasks.
      const [byStatus, byAssignee, completed] = await Promise.all([
        em.execute<{ status: StoredStatus; total: number; overdue: number }[]>(
          `select status, count(*)::int as total,
             count(*) filter (where due_at < ? and status in ('todo', 'in_progress'))::int as overdue
           from task where project_id = ? group by status`,
          [now, projectId],
        ),
        em.execute<{ user_id: string; open: number }[]>(
          `select a.user_id, count(*)::int as open
           from task_assignee a join task t on t.id = a.task_id
           where a.project_id = ? and t.status in ('todo', 'in_progress')
           group by a.user_id order by open desc, a.user_id`,
          [projectId],
        ),
        // Weeks counted from the first one in milliseconds: no time zone takes part.
        em.execute<{ week: number; done: number }[]>(
          `select floor(extract(epoch from completed_at - ?::timestamptz) / 604800)::int as week,
             count(*)::int as done
           from task where project_id = ? and completed_at >= ? group by 1`,
          [firstWeek, projectId, firstWeek],
        ),
      ]);
      const totals = new Map(byStatus.map((r) => [statusToProto(r.status), r.total]));
      const done = new Map(completed.map((r) => [r.week, r.done]));
      return {
        projectId,
        statusCounts: allStatuses.map((status) => ({
          status,
          count: BigInt(totals.get(status) ?? 0),
        })),
        assigneeCounts: byAssignee.map((r) => ({ assigneeId: r.user_id, count: BigInt(r.open) })),
        overdueCount: BigInt(byStatus.reduce((sum, r) => sum + r.overdue, 0)),
        completedPerWeek: Array.from({ length: weeks }, (_, i) => ({
          weekStart: timestampFromDate(new Date(firstWeek.getTime() + i * weekMs)),
          count: BigInt(done.get(i) ?? 0),
        })),
      };
    },
  };
}
