import type { HandlerContext } from "@connectrpc/connect";
import type { EntityName, FilterQuery } from "@mikro-orm/core";
import type { SqlEntityManager } from "@mikro-orm/postgresql";
import type { HttpBody } from "../../gen/google/api/httpbody_pb.ts";
import {
  TaskPrioritySchema,
  type TaskStatus,
  TaskStatusSchema,
} from "../../gen/protomesh/task/v1/task_pb.ts";
import { requireIdentity } from "../../kit/auth/identity.ts";
import { createKeyset, type Keyset, scanInBatches } from "../../kit/db/keyset.ts";
import { parseUuid } from "../../kit/uuid.ts";
import { authorize } from "./access.ts";
import { statusToProto, type TaskLinks } from "./convert.ts";
import { csvField, csvRecord, csvText, streamCsv } from "./csv.ts";
import { Activity, type ActivityRow, Task, type TaskRow } from "./entities.ts";
import type { RpcDeps, TaskRpcs } from "./rpc-deps.ts";
import { loadLinks } from "./task-links.ts";

/** Rows read per query while exporting: memory holds one batch, whatever the project's size. */
export const exportBatchSize = 500;

// Enum values by their names in the contract, as the JSON mapping writes them.
const statusName = (status: TaskStatus) =>
  TaskStatusSchema.values.find((v) => v.number === status)?.name ?? String(status);
const priorityName = (priority: number) =>
  TaskPrioritySchema.values.find((v) => v.number === priority)?.name ?? String(priority);

// Oldest first: an export reads like the project's history, and what is added meanwhile
// lands at its end.
const tasksByCreation = createKeyset<TaskRow>({
  key: "createdAt",
  kind: "date",
  direction: "asc",
  tieBreaker: "id",
});
const activityInOrder = createKeyset<ActivityRow>({
  key: "seq",
  kind: "number",
  direction: "asc",
  tieBreaker: "id",
});

/** The CSV exports of a project's tasks and of its activity log, streamed in chunks. */
export function createExportRpcs({ db }: RpcDeps): TaskRpcs<"exportTasks" | "exportActivity"> {
  return {
    exportTasks: (req, ctx) =>
      exportCsv(ctx, {
        em: db.fork(),
        projectId: req.projectId,
        name: "tasks",
        entity: Task,
        keyset: tasksByCreation,
        header: headerOf(taskColumns),
        records: taskRecords,
      }),
    exportActivity: (req, ctx) =>
      exportCsv(ctx, {
        em: db.fork(),
        projectId: req.projectId,
        name: "activity",
        entity: Activity,
        keyset: activityInOrder,
        header: headerOf(activityColumns),
        records: async (_em, entries) => entries.map((entry) => recordOf(activityColumns, entry)),
      }),
  };
}

/** One export: which rows of a project, in which order, and how they become CSV records. */
interface CsvExport<T extends object> {
  readonly em: SqlEntityManager;
  /** The project id as the request gave it. */
  readonly projectId: string;
  /** Names the download: `<name>-<project id>.csv`. */
  readonly name: string;
  readonly entity: EntityName<T>;
  readonly keyset: Keyset<T>;
  readonly header: readonly string[];
  readonly records: (em: SqlEntityManager, rows: T[]) => Promise<string[]>;
}

/**
 * Streams the rows of a project as a CSV download, once the caller is known to be a member:
 * a stranger gets NotFound before anything is sent. The gateway passes the
 * Content-Disposition header on, so a browser saves the file.
 */
async function* exportCsv<T extends { projectId: string }>(
  ctx: HandlerContext,
  spec: CsvExport<T>,
): AsyncGenerator<HttpBody> {
  const projectId = parseUuid(spec.projectId, "project_id");
  await authorize(spec.em, requireIdentity(ctx), projectId, "read");
  ctx.responseHeader.set(
    "content-disposition",
    `attachment; filename="${spec.name}-${projectId}.csv"`,
  );
  const where = { projectId } as FilterQuery<T>;
  const batches = scanInBatches(spec.em, spec.entity, where, spec.keyset, {
    batchSize: exportBatchSize,
    signal: ctx.signal,
  });
  async function* records(): AsyncGenerator<string[]> {
    for await (const rows of batches) yield await spec.records(spec.em, rows);
  }
  yield* streamCsv(spec.header, records());
}

/** A CSV column: its name in the header, and its field of a row. */
type Column<R> = readonly [name: string, field: (row: R) => string];

/** The columns of a task export, in the contract's order. */
export const taskColumns: readonly Column<{ task: TaskRow; links: TaskLinks }>[] = [
  ["id", ({ task }) => task.id],
  ["title", ({ task }) => csvText(task.title)],
  ["description", ({ task }) => csvText(task.description)],
  ["status", ({ task }) => statusName(statusToProto(task.status))],
  ["priority", ({ task }) => priorityName(task.priority)],
  ["due_time", ({ task }) => task.dueAt?.toISOString() ?? ""],
  ["assignee_ids", ({ links }) => links.assigneeIds.join(";")],
  ["tags", ({ links }) => csvText(links.tags.join(";"))],
  ["attachments", ({ links }) => csvText(links.attachments.map((a) => a.filename).join(";"))],
  ["created_by", ({ task }) => task.createdBy],
  ["create_time", ({ task }) => task.createdAt.toISOString()],
  ["update_time", ({ task }) => task.updatedAt.toISOString()],
];

/** The columns of an activity export, in the contract's order. */
export const activityColumns: readonly Column<ActivityRow>[] = [
  ["id", (entry) => entry.id],
  ["create_time", (entry) => entry.createdAt.toISOString()],
  ["actor_id", (entry) => entry.actorId],
  ["subject_type", (entry) => entry.subjectType],
  ["subject_id", (entry) => entry.subjectId],
  ["action", (entry) => entry.action],
  // The FieldChange messages in the JSON mapping.
  ["changes", (entry) => csvField(JSON.stringify(entry.changes))],
];

/** The header of a table of columns. */
const headerOf = <R>(columns: readonly Column<R>[]) => columns.map(([name]) => name);

/** The CSV record of a row. */
const recordOf = <R>(columns: readonly Column<R>[], row: R) =>
  csvRecord(columns.map(([, field]) => field(row)));

/** The CSV records of a batch of tasks, with their assignees, tags and attachments (three more queries). */
async function taskRecords(em: SqlEntityManager, tasks: TaskRow[]): Promise<string[]> {
  const linksOf = await loadLinks(
    em,
    tasks.map((t) => t.id),
  );
  return tasks.map((task) => recordOf(taskColumns, { task, links: linksOf(task.id) }));
}
