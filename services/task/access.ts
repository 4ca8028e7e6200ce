import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import type { EntityManager } from "@mikro-orm/core";
import { type Identity, requireIdentity } from "../../kit/auth/identity.ts";
import { Project, ProjectMember, type StoredRole, Task, type TaskRow } from "./entities.ts";

/** What a call needs to do in a project: read it, change its tasks, or manage the project. */
export type Need = "read" | "write" | "manage";

// The least role that may do each thing. A viewer reads, an editor also writes tasks and
// comments, an owner also manages the project and its members.
const rank: Record<StoredRole, number> = { viewer: 1, editor: 2, owner: 3 };
const needed: Record<Need, StoredRole> = { read: "viewer", write: "editor", manage: "owner" };

/** NotFound for an object the caller may not see: the same answer as for one that is not there. */
export function notFound(kind: string, id: string): ConnectError {
  return new ConnectError(`${kind} ${id} not found`, Code.NotFound);
}

/**
 * Checks that the caller may do `need` in a project. Someone who is not a member gets
 * `hidden` (NotFound for the object they asked about), so that nobody learns what exists in
 * projects they are not part of; a member whose role is too low gets PermissionDenied. System
 * admins read every project, and write only where their membership allows it.
 */
export async function authorize(
  em: EntityManager,
  caller: Identity,
  projectId: string,
  need: Need,
  hidden: () => ConnectError = () => notFound("project", projectId),
): Promise<void> {
  const member = await em.findOne(
    ProjectMember,
    { projectId, userId: caller.userId },
    { fields: ["role"] },
  );
  const isAdmin = caller.roles.includes("admin");
  if (member === null) {
    if (!isAdmin || (await em.count(Project, { id: projectId })) === 0) throw hidden();
    if (need !== "read") throw denied(need, "an admin who is not a member");
    return;
  }
  if (rank[member.role] < rank[needed[need]]) throw denied(need, `a ${member.role}`);
}

function denied(need: Need, who: string): ConnectError {
  const what =
    need === "manage"
      ? "only owners may manage the project and its members"
      : "only owners and editors may change tasks and comments";
  return new ConnectError(`${what}; you are ${who}`, Code.PermissionDenied);
}

/**
 * The task a caller may `need` to act on: NotFound alike for a task that does not exist and
 * one in a project the caller is not a member of.
 */
export async function findTask(
  em: EntityManager,
  id: string,
  ctx: HandlerContext,
  need: Need,
): Promise<TaskRow> {
  const task = await em.findOne(Task, { id });
  if (task === null) throw notFound("task", id);
  await authorize(em, requireIdentity(ctx), task.projectId, need, () => notFound("task", id));
  return task;
}
