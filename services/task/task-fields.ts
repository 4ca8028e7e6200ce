import { timestampDate } from "@bufbuild/protobuf/wkt";
import type { HandlerContext } from "@connectrpc/connect";
import { Code, ConnectError } from "@connectrpc/connect";
import type { EntityManager } from "@mikro-orm/core";
import type { Task } from "../../gen/protomesh/task/v1/task_pb.ts";
import { priorityFromProto, statusFromProto } from "./convert.ts";
import { ProjectMember, type StoredStatus } from "./entities.ts";
import type { UserDirectory } from "./user-directory.ts";
import {
  checkIds,
  checkPriority,
  checkStatus,
  checkTags,
  limits,
  optionalText,
  requiredText,
} from "./validation.ts";

/** The fields of a task a caller may set, by their proto names. */
export const updatableTaskFields = [
  "title",
  "description",
  "status",
  "priority",
  "due_time",
  "assignee_ids",
  "tags",
  "attachment_ids",
] as const;

/** One field a caller may set. */
export type TaskField = (typeof updatableTaskFields)[number];

/** Checked values of the settable fields of a task, in their stored form. */
export interface TaskValues {
  title?: string;
  description?: string;
  status?: StoredStatus;
  priority?: number;
  dueAt?: Date | null;
  assigneeIds?: string[];
  tags?: string[];
  attachmentIds?: string[];
}

/** Reads and checks the given fields of a task from a request; InvalidArgument saying why. */
export function readTaskValues(task: Task, fields: ReadonlySet<TaskField>): TaskValues {
  const values: TaskValues = {};
  if (fields.has("title")) values.title = requiredText(task.title, "title", limits.title);
  if (fields.has("description")) {
    values.description = optionalText(task.description, "description", limits.taskDescription);
  }
  if (fields.has("status")) values.status = statusFromProto(checkStatus(task.status));
  if (fields.has("priority")) values.priority = priorityFromProto(checkPriority(task.priority));
  if (fields.has("due_time")) values.dueAt = task.dueTime ? timestampDate(task.dueTime) : null;
  if (fields.has("assignee_ids")) {
    values.assigneeIds = checkIds(task.assigneeIds, "assignee_ids", "users");
  }
  if (fields.has("tags")) values.tags = checkTags(task.tags);
  if (fields.has("attachment_ids")) {
    values.attachmentIds = checkIds(task.attachmentIds, "attachment_ids", "files");
  }
  return values;
}

/**
 * Checks that every assignee is a member of the project and a user the user service knows:
 * FailedPrecondition naming the first who is not, as the project must change first.
 */
export async function checkAssignees(
  em: EntityManager,
  users: UserDirectory,
  projectId: string,
  assigneeIds: readonly string[],
  ctx: HandlerContext,
): Promise<void> {
  if (assigneeIds.length === 0) return;
  const members = await em.find(
    ProjectMember,
    { projectId, userId: { $in: [...assigneeIds] } },
    { fields: ["userId"] },
  );
  const memberIds = new Set(members.map((m) => m.userId));
  const outsider = assigneeIds.find((id) => !memberIds.has(id));
  if (outsider !== undefined) throw notAMember(outsider, projectId);
  const [unknown] = await users.unknownUsers(assigneeIds, ctx);
  if (unknown !== undefined) {
    throw new ConnectError(
      `assignee ${unknown} is not a user (any more); remove them from the project`,
      Code.FailedPrecondition,
    );
  }
}

/** FailedPrecondition for an assignee who is not (or no longer) a member of the project. */
export function notAMember(userId: string, projectId: string): ConnectError {
  return new ConnectError(
    `assignee ${userId} is not a member of project ${projectId}; add them as a member first`,
    Code.FailedPrecondition,
  );
}
