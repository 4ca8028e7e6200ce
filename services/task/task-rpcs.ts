import { randomUUID } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { ForeignKeyConstraintViolationException } from "@mikro-orm/core";
import { TaskPriority, TaskSchema } from "../../gen/protomesh/task/v1/task_pb.ts";
import { requireIdentity } from "../../kit/auth/identity.ts";
import { parseUuid } from "../../kit/uuid.ts";
import { authorize, findTask, holdOpen } from "./access.ts";
import { changedFields, recordActivity } from "./activity.ts";
import { resolveAttachments, type StoredAttachment } from "./attachments.ts";
import { type TaskLinks, taskToProto } from "./convert.ts";
import { Task, type TaskRow } from "./entities.ts";
import { lockForChange } from "./locking.ts";
import type { RpcDeps, TaskRpcs } from "./rpc-deps.ts";
import {
  checkAssignees,
  readTaskValues,
  type TaskValues,
  updatableTaskFields,
} from "./task-fields.ts";
import { loadLinks, saveAssignees, saveAttachments, saveTags } from "./task-links.ts";
import { fieldsToUpdate } from "./validation.ts";

/** Creating, reading, updating and deleting single tasks. */
export function createTaskRpcs({
  db,
  users,
  files,
  clock,
}: RpcDeps): TaskRpcs<"createTask" | "getTask" | "updateTask" | "deleteTask"> {
  return {
    async createTask(req, ctx) {
      const caller = requireIdentity(ctx);
      const projectId = parseUuid(req.projectId, "project_id");
      const em = db.fork();
      await authorize(em, caller, projectId, "write");
      const values = readTaskValues(req.task ?? create(TaskSchema), new Set(updatableTaskFields));
      const assigneeIds = values.assigneeIds ?? [];
      await checkAssignees(em, users, projectId, assigneeIds, ctx);
      const links: TaskLinks = {
        assigneeIds,
        tags: values.tags ?? [],
        attachments: await resolveAttachments(files, values.attachmentIds ?? [], [], ctx),
      };
      const now = clock();
      const row: TaskRow = {
        id: randomUUID(),
        projectId,
        title: values.title ?? "",
        description: values.description ?? "",
        status: values.status ?? "todo",
        priority: values.priority ?? TaskPriority.MEDIUM,
        dueAt: values.dueAt ?? null,
        completedAt: values.status === "done" ? now : null,
        commentCount: 0,
        createdBy: caller.userId,
        updatedBy: caller.userId,
        createdAt: now,
        updatedAt: now,
        version: 1,
      };
      await write(projectId, () =>
        em.transactional(async (tx) => {
          await holdOpen(tx, projectId);
          tx.create(Task, row);
          // The links reference the task: insert it first.
          await tx.flush();
          await saveAssignees(tx, row, links.assigneeIds);
          await saveTags(tx, row, links.tags);
          await saveAttachments(tx, row, links.attachments);
          recordActivity(tx, {
            projectId,
            actorId: caller.userId,
            subjectType: "task",
            subjectId: row.id,
            action: "created",
            at: now,
          });
        }),
      );
      return taskToProto(row, links);
    },

    async getTask(req, ctx) {
      const id = parseUuid(req.id, "id");
      const em = db.fork();
      const task = await findTask(em, id, ctx, "read");
      return taskToProto(task, (await loadLinks(em, [id]))(id));
    },

    async updateTask(req, ctx) {
      const caller = requireIdentity(ctx);
      const input = req.task ?? create(TaskSchema);
      const id = parseUuid(input.id, "task.id");
      const fields = fieldsToUpdate(req.updateMask?.paths, updatableTaskFields);
      const em = db.fork();
      const { projectId } = await findTask(em, id, ctx, "write");
      const values = readTaskValues(input, fields);
      if (values.assigneeIds) await checkAssignees(em, users, projectId, values.assigneeIds, ctx);
      // Asked before the transaction, which holds no lock while the file service answers.
      const attachments =
        values.attachmentIds === undefined
          ? undefined
          : await resolveAttachments(
              files,
              values.attachmentIds,
              (await loadLinks(em, [id]))(id).attachments,
              ctx,
            );
      return write(projectId, () =>
        em.transactional(async (tx) => {
          await holdOpen(tx, projectId);
          const row = await lockForChange<TaskRow>(tx, Task, "task", id, input.etag);
          const links = (await loadLinks(tx, [id]))(id);
          const before = taskToProto(row, links);
          const next = applyValues(row, links, { ...values, attachments }, clock());
          const changes = changedFields(
            TaskSchema,
            before,
            taskToProto(next.row, next.links),
            fields,
          );
          // Nothing differs: the task keeps its version, and the log stays quiet.
          if (changes.length === 0) return before;
          tx.assign(row, { ...next.row, version: row.version + 1, updatedBy: caller.userId });
          if (values.assigneeIds) await saveAssignees(tx, row, next.links.assigneeIds);
          if (values.tags) await saveTags(tx, row, next.links.tags);
          if (attachments) await saveAttachments(tx, row, attachments);
          recordActivity(tx, {
            projectId,
            actorId: caller.userId,
            subjectType: "task",
            subjectId: id,
            action: "updated",
            changes,
            at: row.updatedAt,
          });
          return taskToProto(row, next.links);
        }),
      );
    },

    async deleteTask(req, ctx) {
      const caller = requireIdentity(ctx);
      const id = parseUuid(req.id, "id");
      const em = db.fork();
      const { projectId } = await findTask(em, id, ctx, "write");
      await em.transactional(async (tx) => {
        await holdOpen(tx, projectId);
        await lockForChange<TaskRow>(tx, Task, "task", id, req.etag);
        // Comments, assignments, tag links and attachments go with it (on delete cascade).
        await tx.nativeDelete(Task, { id });
        recordActivity(tx, {
          projectId,
          actorId: caller.userId,
          subjectType: "task",
          subjectId: id,
          action: "deleted",
          at: clock(),
        });
      });
      return {};
    },
  };
}

/** The task as it will be once `values` are applied (the row itself is left as it is). */
function applyValues(
  row: TaskRow,
  links: TaskLinks,
  values: TaskValues & { readonly attachments?: readonly StoredAttachment[] | undefined },
  now: Date,
): { row: TaskRow; links: TaskLinks } {
  const status = values.status ?? row.status;
  let completedAt = row.completedAt ?? null;
  // Done is counted in the week a task got there; leaving done forgets it.
  if (status === "done" && row.status !== "done") completedAt = now;
  if (status !== "done") completedAt = null;
  return {
    row: {
      ...row,
      title: values.title ?? row.title,
      description: values.description ?? row.description,
      status,
      priority: values.priority ?? row.priority,
      dueAt: values.dueAt === undefined ? (row.dueAt ?? null) : values.dueAt,
      completedAt,
      updatedAt: now,
    },
    links: {
      assigneeIds: values.assigneeIds ?? links.assigneeIds,
      tags: values.tags ?? links.tags,
      attachments: values.attachments ?? links.attachments,
    },
  };
}

/**
 * Runs a write that links a task to its project and assignees: the database refuses the links
 * when the project was deleted or an assignee removed from it after the checks (a concurrent
 * DeleteProject or RemoveMember), which is FailedPrecondition, as the checks' own answer.
 */
async function write<T>(projectId: string, run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (err) {
    if (err instanceof ForeignKeyConstraintViolationException) {
      throw new ConnectError(
        `project ${projectId} changed meanwhile (deleted, or an assignee removed from it); check it and try again`,
        Code.FailedPrecondition,
      );
    }
    throw err;
  }
}
