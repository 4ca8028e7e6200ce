import { defineEntity, type InferEntity, p } from "@mikro-orm/core";

/**
 * A project. `version` grows on every change and is the etag, so a stale update is refused
 * rather than applied over someone else's.
 */
export const Project = defineEntity({
  name: "Project",
  tableName: "project",
  properties: {
    id: p.uuid().primary(),
    name: p.text(),
    description: p.text(),
    archived: p.boolean(),
    ownerId: p.uuid(),
    version: p.integer(),
    createdAt: p.datetime(),
    updatedAt: p.datetime(),
  },
});

/** A project as loaded from the database. */
export type ProjectRow = InferEntity<typeof Project>;

/** A user's membership of a project; access to everything in a project goes through it. */
export const ProjectMember = defineEntity({
  name: "ProjectMember",
  tableName: "project_member",
  properties: {
    projectId: p.manyToOne(Project).mapToPk().fieldName("project_id").primary(),
    userId: p.uuid().primary(),
    role: p.enum(["owner", "editor", "viewer"]),
    createdAt: p.datetime(),
  },
});

/** A membership as loaded from the database. */
export type MemberRow = InferEntity<typeof ProjectMember>;

/** A member's role in a project, as stored. */
export type StoredRole = MemberRow["role"];

/**
 * A task. `priority` is stored as its enum number (1 low to 4 urgent) so it sorts;
 * `completedAt` is when it last moved to done (for the weekly statistics), `commentCount`
 * is kept with the comments in the same transaction, and `version` is the etag.
 */
export const Task = defineEntity({
  name: "Task",
  tableName: "task",
  properties: {
    id: p.uuid().primary(),
    projectId: p.manyToOne(Project).mapToPk().fieldName("project_id"),
    title: p.text(),
    description: p.text(),
    status: p.enum(["todo", "in_progress", "done", "cancelled"]),
    priority: p.smallint(),
    dueAt: p.datetime().nullable(),
    completedAt: p.datetime().nullable(),
    commentCount: p.integer(),
    createdBy: p.uuid(),
    updatedBy: p.uuid(),
    createdAt: p.datetime(),
    updatedAt: p.datetime(),
    version: p.integer(),
  },
});

/** A task as loaded from the database. */
export type TaskRow = InferEntity<typeof Task>;

/** A task's status, as stored. */
export type StoredStatus = TaskRow["status"];

/**
 * A user assigned to a task, at a position in the task's list. The database refuses an
 * assignee who is not a member of the task's project, and drops the assignment with the
 * membership.
 */
export const TaskAssignee = defineEntity({
  name: "TaskAssignee",
  tableName: "task_assignee",
  properties: {
    taskId: p.manyToOne(Task).mapToPk().fieldName("task_id").primary(),
    userId: p.uuid().primary(),
    projectId: p.uuid(),
    position: p.smallint(),
  },
});

/** A label of a project, shared by the tasks that carry it. */
export const Tag = defineEntity({
  name: "Tag",
  tableName: "tag",
  properties: {
    id: p.uuid().primary(),
    projectId: p.manyToOne(Project).mapToPk().fieldName("project_id"),
    name: p.text(),
  },
});

/** A tag on a task, at a position in the task's list. */
export const TaskTag = defineEntity({
  name: "TaskTag",
  tableName: "task_tag",
  properties: {
    taskId: p.manyToOne(Task).mapToPk().fieldName("task_id").primary(),
    tagId: p.manyToOne(Tag).mapToPk().fieldName("tag_id").primary(),
    position: p.smallint(),
  },
});

/**
 * A file attached to a task, at a position in the task's list, with the file's metadata as the
 * file service gave it when it was attached: a page of tasks shows it without calling there.
 */
export const TaskAttachment = defineEntity({
  name: "TaskAttachment",
  tableName: "task_attachment",
  properties: {
    taskId: p.manyToOne(Task).mapToPk().fieldName("task_id").primary(),
    fileId: p.uuid().primary(),
    filename: p.text(),
    sizeBytes: p.bigint("number"),
    contentType: p.text(),
    position: p.smallint(),
  },
});

/** An attachment as loaded from the database. */
export type AttachmentRow = InferEntity<typeof TaskAttachment>;

/** A comment on a task. */
export const Comment = defineEntity({
  name: "Comment",
  tableName: "comment",
  properties: {
    id: p.uuid().primary(),
    taskId: p.manyToOne(Task).mapToPk().fieldName("task_id"),
    authorId: p.uuid(),
    body: p.text(),
    createdAt: p.datetime(),
  },
});

/** A comment as loaded from the database. */
export type CommentRow = InferEntity<typeof Comment>;

/** One changed field of an activity entry: JSON-encoded values, "" when unset. */
export interface StoredChange {
  readonly field: string;
  readonly before: string;
  readonly after: string;
}

/**
 * One change to a project or something in it: who did what to which object, and when. `seq`
 * numbers the entries in the order they were written.
 */
export const Activity = defineEntity({
  name: "Activity",
  tableName: "activity",
  properties: {
    seq: p.bigint("number").primary().autoincrement(),
    id: p.uuid().unique(),
    projectId: p.manyToOne(Project).mapToPk().fieldName("project_id"),
    actorId: p.uuid(),
    subjectType: p.enum(["project", "member", "task", "comment"]),
    subjectId: p.uuid(),
    action: p.enum(["created", "updated", "deleted"]),
    changes: p.json<StoredChange[]>(),
    createdAt: p.datetime(),
  },
});

/** An activity entry as loaded from the database. */
export type ActivityRow = InferEntity<typeof Activity>;

/** Every entity of the task service. */
export const taskEntities = [
  Project,
  ProjectMember,
  Task,
  TaskAssignee,
  Tag,
  TaskTag,
  TaskAttachment,
  Comment,
  Activity,
];
