import { randomUUID } from "node:crypto";
import type { SqlEntityManager } from "@mikro-orm/postgresql";
import type { StoredAttachment } from "./attachments.ts";
import type { TaskLinks } from "./convert.ts";
import { Tag, TaskAssignee, TaskAttachment, TaskTag } from "./entities.ts";

const noLinks: TaskLinks = { assigneeIds: [], tags: [], attachments: [] };

/**
 * The assignees, tags and attachments of some tasks, each list in its stored order: three
 * queries however many tasks there are, so a page of tasks never costs a query per task.
 */
export async function loadLinks(
  em: SqlEntityManager,
  taskIds: readonly string[],
): Promise<(taskId: string) => TaskLinks> {
  if (taskIds.length === 0) return () => noLinks;
  const ids = [...taskIds];
  // One after the other: inside a transaction they would share one connection.
  const assignees = await em.find(
    TaskAssignee,
    { taskId: { $in: ids } },
    // Read-only: kept out of the identity map, which an export would otherwise fill.
    {
      fields: ["taskId", "userId", "position"],
      orderBy: { position: "asc" },
      disableIdentityMap: true,
    },
  );
  const tags = await em
    .createQueryBuilder(TaskTag, "tt")
    .select(["tt.taskId", "t.name"])
    .join("tt.tagId", "t")
    .where({ taskId: { $in: ids } })
    .orderBy({ position: "asc" })
    // Raw rows, keyed by column: the join's columns belong to no one entity.
    .execute<{ task_id: string; name: string }[]>("all", false);
  const attachments = await em.find(
    TaskAttachment,
    { taskId: { $in: ids } },
    { orderBy: { position: "asc" }, disableIdentityMap: true },
  );
  const links = new Map<
    string,
    { assigneeIds: string[]; tags: string[]; attachments: StoredAttachment[] }
  >();
  const linksOf = (taskId: string) => {
    let found = links.get(taskId);
    if (found === undefined) {
      found = { assigneeIds: [], tags: [], attachments: [] };
      links.set(taskId, found);
    }
    return found;
  };
  for (const a of assignees) linksOf(a.taskId).assigneeIds.push(a.userId);
  for (const t of tags) linksOf(t.task_id).tags.push(t.name);
  for (const { taskId, fileId, filename, sizeBytes, contentType } of attachments) {
    linksOf(taskId).attachments.push({ fileId, filename, sizeBytes, contentType });
  }
  return (taskId) => links.get(taskId) ?? noLinks;
}

/** Replaces a task's assignees (members of its project; the database holds to that). */
export async function saveAssignees(
  em: SqlEntityManager,
  task: { readonly id: string; readonly projectId: string },
  userIds: readonly string[],
): Promise<void> {
  await em.nativeDelete(TaskAssignee, { taskId: task.id });
  if (userIds.length === 0) return;
  await em.insertMany(
    TaskAssignee,
    userIds.map((userId, position) => ({
      taskId: task.id,
      userId,
      projectId: task.projectId,
      position,
    })),
  );
}

/** Replaces a task's tags, adding to its project the tags it does not have yet. */
export async function saveTags(
  em: SqlEntityManager,
  task: { readonly id: string; readonly projectId: string },
  names: readonly string[],
): Promise<void> {
  await em.nativeDelete(TaskTag, { taskId: task.id });
  if (names.length === 0) return;
  // Two writers adding the same new tag: the second one's insert does nothing, and both
  // read the one tag that won.
  await em
    .createQueryBuilder(Tag)
    .insert(names.map((name) => ({ id: randomUUID(), projectId: task.projectId, name })))
    .onConflict(["projectId", "name"])
    .ignore()
    .execute();
  const tags = await em.find(Tag, { projectId: task.projectId, name: { $in: [...names] } });
  const idOf = new Map(tags.map((t) => [t.name, t.id]));
  await em.insertMany(
    TaskTag,
    names.map((name, position) => ({ taskId: task.id, tagId: idOf.get(name) ?? "", position })),
  );
}

/** Replaces a task's attachments, with the metadata each had when it was attached. */
export async function saveAttachments(
  em: SqlEntityManager,
  task: { readonly id: string },
  attachments: readonly StoredAttachment[],
): Promise<void> {
  await em.nativeDelete(TaskAttachment, { taskId: task.id });
  if (attachments.length === 0) return;
  await em.insertMany(
    TaskAttachment,
    attachments.map((attachment, position) => ({ taskId: task.id, ...attachment, position })),
  );
}
