import { timestampDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import type { FilterQuery } from "@mikro-orm/core";
import type { SqlEntityManager } from "@mikro-orm/postgresql";
import { type ListTasksRequest, TaskStatus } from "../../gen/protomesh/task/v1/task_pb.ts";
import { requireIdentity } from "../../kit/auth/identity.ts";
import { createKeyset, findPage, type KeysetSort } from "../../kit/db/keyset.ts";
import { parseUuid } from "../../kit/uuid.ts";
import { authorize } from "./access.ts";
import { statusFromProto, taskToProto } from "./convert.ts";
import { Task, TaskAssignee, type TaskRow, TaskTag } from "./entities.ts";
import type { RpcDeps, TaskRpcs } from "./rpc-deps.ts";
import { inSubquery } from "./subquery.ts";
import { loadLinks } from "./task-links.ts";
import { checkStatus, limits, optionalText } from "./validation.ts";

const invalid = (message: string) => new ConnectError(message, Code.InvalidArgument);

// The orders ListTasks offers, by their names in order_by.
const orders: Record<string, Omit<KeysetSort<TaskRow>, "direction" | "tieBreaker">> = {
  create_time: { key: "createdAt", kind: "date" },
  update_time: { key: "updatedAt", kind: "date" },
  due_time: { key: "dueAt", kind: "date", nullable: true },
  priority: { key: "priority", kind: "number" },
};

/**
 * The sort an order_by asks for: a field name, optionally followed by "desc" (or "asc");
 * "create_time desc" when empty. Ties are broken by id, in the same direction.
 */
export function parseOrderBy(orderBy: string): KeysetSort<TaskRow> {
  const text = orderBy.trim() === "" ? "create_time desc" : orderBy.trim();
  const [name = "", direction = "asc", ...rest] = text.split(/\s+/);
  const order = orders[name];
  if (order === undefined || rest.length > 0 || !/^(asc|desc)$/i.test(direction)) {
    throw invalid(
      `order_by "${orderBy}" is not supported: use one of ${Object.keys(orders).join(", ")}, optionally followed by " desc"`,
    );
  }
  return { ...order, direction: direction.toLowerCase() as "asc" | "desc", tieBreaker: "id" };
}

/** The tasks of a project that a ListTasks request's filters select, and what they are. */
export interface TaskFilter {
  readonly where: FilterQuery<TaskRow>;
  /** The filters in a canonical form: page tokens are bound to them. */
  readonly canonical: string;
}

/** Reads and checks the filters of a ListTasks request; InvalidArgument saying what is wrong. */
export function taskFilterOf(
  em: SqlEntityManager,
  projectId: string,
  req: ListTasksRequest,
): TaskFilter {
  const conditions: FilterQuery<TaskRow>[] = [{ projectId }];
  const statuses = [...new Set(req.statuses.map((s) => checkStatus(s, "statuses")))].sort();
  if (statuses.includes(TaskStatus.UNSPECIFIED)) {
    throw invalid("statuses must not contain TASK_STATUS_UNSPECIFIED");
  }
  if (statuses.length > 0) conditions.push({ status: { $in: statuses.map(statusFromProto) } });
  const assigneeId = req.assigneeId === "" ? "" : parseUuid(req.assigneeId, "assignee_id");
  if (assigneeId !== "") {
    const assigned = em
      .createQueryBuilder(TaskAssignee, "a")
      .select("a.taskId")
      .where({ projectId, userId: assigneeId });
    conditions.push(inSubquery<TaskRow>("id", assigned));
  }
  const tag = optionalText(req.tag, "tag", limits.tag);
  if (tag !== "") {
    const tagged = em
      .createQueryBuilder(TaskTag, "tt")
      .select("tt.taskId")
      .join("tt.tagId", "t")
      .where({ "t.projectId": projectId, "t.name": tag });
    conditions.push(inSubquery<TaskRow>("id", tagged));
  }
  const dueBefore = req.dueBefore ? timestampDate(req.dueBefore) : undefined;
  const dueAfter = req.dueAfter ? timestampDate(req.dueAfter) : undefined;
  if (dueBefore) conditions.push({ dueAt: { $lt: dueBefore } });
  if (dueAfter) conditions.push({ dueAt: { $gte: dueAfter } });
  const query = optionalText(req.query, "query", limits.query);
  if (query !== "") {
    // ILIKE's wildcards and escape character in the text match themselves.
    const pattern = `%${query.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
    conditions.push({
      $or: [{ title: { $ilike: pattern } }, { description: { $ilike: pattern } }],
    });
  }
  const canonical = JSON.stringify([
    statuses,
    assigneeId,
    tag,
    dueBefore?.toISOString() ?? "",
    dueAfter?.toISOString() ?? "",
    query,
  ]);
  return { where: { $and: conditions }, canonical };
}

/** The list of a project's tasks: filtered, sorted, paged, with an optional total. */
export function createTaskListRpcs({ db, pageTokens }: RpcDeps): TaskRpcs<"listTasks"> {
  return {
    async listTasks(req, ctx) {
      const projectId = parseUuid(req.projectId, "project_id");
      const em = db.fork();
      await authorize(em, requireIdentity(ctx), projectId, "read");
      const filter = taskFilterOf(em, projectId, req);
      const sort = parseOrderBy(req.orderBy);
      const { rows, nextPageToken } = await findPage(em, Task, filter.where, req, {
        keyset: createKeyset(sort),
        tokens: pageTokens,
        // A token only continues the list it came from: same project, filters and order.
        scope: `tasks:${projectId}:${sort.key}:${sort.direction}:${filter.canonical}`,
      });
      const [linksOf, total] = await Promise.all([
        loadLinks(
          em,
          rows.map((r) => r.id),
        ),
        req.includeTotalSize ? em.count(Task, filter.where) : Promise.resolve(0),
      ]);
      return {
        tasks: rows.map((row) => taskToProto(row, linksOf(row.id))),
        nextPageToken,
        totalSize: total,
      };
    },
  };
}
