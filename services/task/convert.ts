import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import {
  type ActivityEntry,
  ActivityEntrySchema,
  type Comment,
  CommentSchema,
  type Member,
  MemberRole,
  MemberSchema,
  type Project,
  ProjectSchema,
  type Task,
  TaskPriority,
  TaskSchema,
  TaskStatus,
} from "../../gen/protomesh/task/v1/task_pb.ts";
import type { StoredAttachment } from "./attachments.ts";
import type {
  ActivityRow,
  CommentRow,
  MemberRow,
  ProjectRow,
  StoredRole,
  StoredStatus,
  TaskRow,
} from "./entities.ts";

const statuses: Record<StoredStatus, TaskStatus> = {
  todo: TaskStatus.TODO,
  in_progress: TaskStatus.IN_PROGRESS,
  done: TaskStatus.DONE,
  cancelled: TaskStatus.CANCELLED,
};

const roles: Record<StoredRole, MemberRole> = {
  owner: MemberRole.OWNER,
  editor: MemberRole.EDITOR,
  viewer: MemberRole.VIEWER,
};

/** The API form of a stored status. */
export function statusToProto(status: StoredStatus): TaskStatus {
  return statuses[status];
}

/** The stored form of a status; UNSPECIFIED means the default, TODO. */
export function statusFromProto(status: TaskStatus): StoredStatus {
  const found = (Object.keys(statuses) as StoredStatus[]).find((s) => statuses[s] === status);
  return found ?? "todo";
}

/** The stored form of a priority: its number, UNSPECIFIED meaning the default, MEDIUM. */
export function priorityFromProto(priority: TaskPriority): number {
  return priority === TaskPriority.UNSPECIFIED ? TaskPriority.MEDIUM : priority;
}

/** The stored form of a role. */
export function roleFromProto(role: MemberRole): StoredRole {
  const found = (Object.keys(roles) as StoredRole[]).find((r) => roles[r] === role);
  if (found === undefined) throw new Error(`no stored role for ${role}`);
  return found;
}

/** An etag from a row's version: opaque to clients, changed by every update. */
export function etagOf(row: { readonly version: number }): string {
  return `v${row.version}`;
}

/** The API form of a project. */
export function projectToProto(row: ProjectRow): Project {
  return create(ProjectSchema, {
    id: row.id,
    name: row.name,
    description: row.description,
    archived: row.archived,
    ownerId: row.ownerId,
    createTime: timestampFromDate(row.createdAt),
    updateTime: timestampFromDate(row.updatedAt),
    etag: etagOf(row),
  });
}

/** The API form of a membership. */
export function memberToProto(row: MemberRow): Member {
  return create(MemberSchema, {
    projectId: row.projectId,
    userId: row.userId,
    role: roles[row.role],
    createTime: timestampFromDate(row.createdAt),
  });
}

/** What a task carries beside its own row: its assignees, tags and attachments, in order. */
export interface TaskLinks {
  readonly assigneeIds: readonly string[];
  readonly tags: readonly string[];
  readonly attachments: readonly StoredAttachment[];
}

/** The API form of a task with its assignees, tags and attachments. */
export function taskToProto(row: TaskRow, links: TaskLinks): Task {
  return create(TaskSchema, {
    id: row.id,
    projectId: row.projectId,
    title: row.title,
    description: row.description,
    status: statuses[row.status],
    priority: row.priority,
    ...(row.dueAt ? { dueTime: timestampFromDate(row.dueAt) } : {}),
    assigneeIds: [...links.assigneeIds],
    tags: [...links.tags],
    attachmentIds: links.attachments.map((a) => a.fileId),
    attachments: links.attachments.map((a) => ({
      fileId: a.fileId,
      filename: a.filename,
      sizeBytes: BigInt(a.sizeBytes),
      contentType: a.contentType,
    })),
    commentCount: row.commentCount,
    createdBy: row.createdBy,
    updatedBy: row.updatedBy,
    createTime: timestampFromDate(row.createdAt),
    updateTime: timestampFromDate(row.updatedAt),
    etag: etagOf(row),
  });
}

/** The API form of a comment. */
export function commentToProto(row: CommentRow): Comment {
  return create(CommentSchema, {
    id: row.id,
    taskId: row.taskId,
    authorId: row.authorId,
    body: row.body,
    createTime: timestampFromDate(row.createdAt),
  });
}

/** The API form of an activity entry. */
export function activityToProto(row: ActivityRow): ActivityEntry {
  return create(ActivityEntrySchema, {
    id: row.id,
    projectId: row.projectId,
    actorId: row.actorId,
    subjectType: row.subjectType,
    subjectId: row.subjectId,
    action: row.action,
    changes: row.changes.map((c) => ({ field: c.field, before: c.before, after: c.after })),
    createTime: timestampFromDate(row.createdAt),
  });
}
