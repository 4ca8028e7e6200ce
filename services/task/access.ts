import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import type { SqlEntityManager } from "@mikro-orm/postgresql";
import { type Identity, requireIdentity } from "../../kit/auth/identity.ts";
import { Project, type ProjectRow, type StoredRole, Task, type TaskRow } from "./entities.ts";

/** What a call needs to do in a project: read it, change its tasks, or manage the project. */
export type Need = "read" | "write" | "manage";

/** How a call treats the project's archived state, beyond what its need implies. */
export interface AccessOptions {
  /**
   * Whether the call changes the project or something in it, which an archived project
   * refuses. Defaults to true for "write" and "manage", false for "read".
   */
  readonly changes?: boolean;
}

// The least role that may do each thing. A viewer reads, an editor also writes tasks and
// comments, an owner also manages the project and its members.
const rank: Record<StoredRole, number> = { viewer: 1, editor: 2, owner: 3 };
const needed: Record<Need, StoredRole> = { read: "viewer", write: "editor", manage: "owner" };

// The caller's role comes back under a name no entity column has.
const roleColumn = "caller_role";

// One statement whether the object exists or not, and whether the caller is a member or not:
// a row only when the caller may see it (a member, or an admin), so an object of someone
// else's project and one that does not exist cost the same and answer the same NotFound.
const visibleProject = `select p.*, m.role as ${roleColumn}
  from project p
  left join project_member m on m.project_id = p.id and m.user_id = ?
  where p.id = ? and (m.role is not null or ?)`;
const visibleTask = `select t.*, p.archived as project_archived, m.role as ${roleColumn}
  from task t
  join project p on p.id = t.project_id
  left join project_member m on m.project_id = t.project_id and m.user_id = ?
  where t.id = ? and (m.role is not null or ?)`;

/** NotFound for an object the caller may not see: the same answer as for one that is not there. */
export function notFound(kind: string, id: string): ConnectError {
  return new ConnectError(`${kind} ${id} not found`, Code.NotFound);
}

/**
 * The project, if the caller may do `need` in it. Someone who is not a member gets NotFound,
 * as for a project that does not exist, so that nobody learns what exists in projects they
 * are not part of; a member whose role is too low gets PermissionDenied; a change to an
 * archived project gets FailedPrecondition. System admins read every project, and write only
 * where their membership allows it.
 */
export async function authorize(
  em: SqlEntityManager,
  caller: Identity,
  projectId: string,
  need: Need,
  options: AccessOptions = {},
): Promise<ProjectRow> {
  const [row] = await em.execute<Record<string, unknown>[]>(visibleProject, [
    caller.userId,
    projectId,
    caller.roles.includes("admin"),
  ]);
  if (row === undefined) throw notFound("project", projectId);
  const { [roleColumn]: role, ...project } = row;
  const found = em.map(Project, project);
  check(need, options, role as StoredRole | null, found);
  return found;
}

/**
 * The task a caller may `need` to act on, found as `authorize` finds a project: NotFound alike
 * for a task that does not exist and one in a project the caller is not a member of.
 */
export async function findTask(
  em: SqlEntityManager,
  id: string,
  ctx: HandlerContext,
  need: Need,
): Promise<TaskRow> {
  const caller = requireIdentity(ctx);
  const [row] = await em.execute<Record<string, unknown>[]>(visibleTask, [
    caller.userId,
    id,
    caller.roles.includes("admin"),
  ]);
  if (row === undefined) throw notFound("task", id);
  const { [roleColumn]: role, project_archived: archived, ...task } = row;
  const found = em.map(Task, task);
  check(need, {}, role as StoredRole | null, { id: found.projectId, archived: archived === true });
  return found;
}

/** Refuses a visible project's caller what their role or the project's state does not allow. */
function check(
  need: Need,
  options: AccessOptions,
  role: StoredRole | null,
  project: Pick<ProjectRow, "id" | "archived">,
): void {
  // No role: an admin who is not a member, who may only read.
  if (role === null) {
    if (need !== "read") throw denied(need, "an admin who is not a member");
  } else if (rank[role] < rank[needed[need]]) throw denied(need, `a ${role}`);
  if (options.changes ?? need !== "read") refuseArchived(project);
}

/** FailedPrecondition when the project is archived: the answer to every change in it. */
export function refuseArchived(project: Pick<ProjectRow, "id" | "archived">): void {
  if (project.archived) throw archived(project.id);
}

/**
 * Inside a change's transaction, after `authorize` or `findTask` let it through: holds the
 * project's row until the change commits (FOR SHARE, so changes in one project still run side
 * by side) and refuses the change when the project was archived or deleted since the check. An
 * archive that commits while the change waits for the row is seen, not written past.
 */
export async function holdOpen(tx: SqlEntityManager, projectId: string): Promise<void> {
  const [row] = await tx.execute<{ archived: boolean }[]>(
    "select archived from project where id = ? for share",
    [projectId],
  );
  if (row === undefined) throw notFound("project", projectId);
  refuseArchived({ id: projectId, archived: row.archived });
}

function denied(need: Need, who: string): ConnectError {
  const what =
    need === "manage"
      ? "only owners may manage the project and its members"
      : "only owners and editors may change tasks and comments";
  return new ConnectError(`${what}; you are ${who}`, Code.PermissionDenied);
}

function archived(projectId: string): ConnectError {
  return new ConnectError(
    `project ${projectId} is archived: it takes no changes until an owner unarchives it (UpdateProject with archived false)`,
    Code.FailedPrecondition,
  );
}
