import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  ForeignKeyConstraintViolationException,
  raw,
  UniqueConstraintViolationException,
} from "@mikro-orm/core";
import type { SqlEntityManager } from "@mikro-orm/postgresql";
import { MemberSchema, TaskSchema } from "../../gen/protomesh/task/v1/task_pb.ts";
import { requireIdentity } from "../../kit/auth/identity.ts";
import { createKeyset, findPage } from "../../kit/db/keyset.ts";
import { parseUuid } from "../../kit/uuid.ts";
import { authorize, holdOpen, notFound, refuseArchived } from "./access.ts";
import { changedFields, recordActivity } from "./activity.ts";
import { memberToProto, roleFromProto, taskToProto } from "./convert.ts";
import {
  type MemberRow,
  Project,
  ProjectMember,
  type ProjectRow,
  Task,
  TaskAssignee,
} from "./entities.ts";
import { lockForChange } from "./locking.ts";
import type { RpcDeps, TaskRpcs } from "./rpc-deps.ts";
import { loadLinks } from "./task-links.ts";
import { checkRole } from "./validation.ts";

// In the order they were added, as ListMembers promises.
const firstAddedFirst = createKeyset<MemberRow>({
  key: "createdAt",
  kind: "date",
  direction: "asc",
  tieBreaker: "userId",
});

/** Adding, listing, changing and removing the members of a project. */
export function createMemberRpcs({
  db,
  users,
  pageTokens,
  clock,
}: RpcDeps): TaskRpcs<"addMember" | "listMembers" | "updateMember" | "removeMember"> {
  return {
    async addMember(req, ctx) {
      const caller = requireIdentity(ctx);
      const projectId = parseUuid(req.projectId, "project_id");
      const input = req.member ?? create(MemberSchema);
      const userId = parseUuid(input.userId, "member.user_id");
      const role = roleFromProto(checkRole(input.role));
      const em = db.fork();
      await authorize(em, caller, projectId, "manage");
      if ((await users.unknownUsers([userId], ctx)).length > 0) {
        throw new ConnectError(`member.user_id ${userId} is not a user`, Code.InvalidArgument);
      }
      const row: MemberRow = { projectId, userId, role, createdAt: clock() };
      try {
        await em.transactional(async (tx) => {
          await holdOpen(tx, projectId);
          tx.create(ProjectMember, row);
          recordActivity(tx, {
            projectId,
            actorId: caller.userId,
            subjectType: "member",
            subjectId: userId,
            action: "created",
            at: row.createdAt,
          });
        });
      } catch (err) {
        if (err instanceof UniqueConstraintViolationException) {
          throw new ConnectError(
            `user ${userId} is already a member of project ${projectId}`,
            Code.AlreadyExists,
          );
        }
        // The project was deleted since the check.
        if (err instanceof ForeignKeyConstraintViolationException)
          throw notFound("project", projectId);
        throw err;
      }
      return memberToProto(row);
    },

    async listMembers(req, ctx) {
      const projectId = parseUuid(req.projectId, "project_id");
      const em = db.fork();
      await authorize(em, requireIdentity(ctx), projectId, "read");
      const { rows, nextPageToken } = await findPage(em, ProjectMember, { projectId }, req, {
        keyset: firstAddedFirst,
        tokens: pageTokens,
        scope: `members:${projectId}`,
      });
      return { members: rows.map(memberToProto), nextPageToken };
    },

    async updateMember(req, ctx) {
      const caller = requireIdentity(ctx);
      const projectId = parseUuid(req.projectId, "project_id");
      const userId = parseUuid(req.userId, "user_id");
      const role = roleFromProto(checkRole(req.role));
      const em = db.fork();
      await authorize(em, caller, projectId, "manage");
      return em.transactional(async (tx) => {
        // One membership change of a project at a time, as for removals.
        refuseArchived(await lockForChange<ProjectRow>(tx, Project, "project", projectId, ""));
        const member = await findMember(tx, projectId, userId);
        if (member.role === role) return memberToProto(member);
        if (member.role === "owner") await refuseLastOwner(tx, projectId, userId);
        const before = memberToProto(member);
        member.role = role;
        const after = memberToProto(member);
        recordActivity(tx, {
          projectId,
          actorId: caller.userId,
          subjectType: "member",
          subjectId: userId,
          action: "updated",
          changes: changedFields(MemberSchema, before, after, ["role"]),
          at: clock(),
        });
        return after;
      });
    },

    async removeMember(req, ctx) {
      const caller = requireIdentity(ctx);
      const projectId = parseUuid(req.projectId, "project_id");
      const userId = parseUuid(req.userId, "user_id");
      const em = db.fork();
      // Anyone may leave; only owners may remove somebody else.
      const need = userId === caller.userId ? "read" : "manage";
      await authorize(em, caller, projectId, need, { changes: true });
      await em.transactional(async (tx) => {
        // One membership change of a project at a time, so that two owners removing each
        // other cannot leave it without one.
        refuseArchived(await lockForChange<ProjectRow>(tx, Project, "project", projectId, ""));
        const member = await findMember(tx, projectId, userId);
        if (member.role === "owner") await refuseLastOwner(tx, projectId, userId);
        const at = clock();
        await unassign(tx, projectId, userId, caller.userId, at);
        tx.remove(member);
        recordActivity(tx, {
          projectId,
          actorId: caller.userId,
          subjectType: "member",
          subjectId: userId,
          action: "deleted",
          at,
        });
      });
      return {};
    },
  };
}

async function findMember(tx: SqlEntityManager, projectId: string, userId: string) {
  const member = await tx.findOne(ProjectMember, { projectId, userId });
  if (member === null) {
    throw new ConnectError(`user ${userId} is not a member of project ${projectId}`, Code.NotFound);
  }
  return member;
}

/** Refuses to take the owner role from `userId` if it is the project's only owner. */
async function refuseLastOwner(tx: SqlEntityManager, projectId: string, userId: string) {
  if ((await tx.count(ProjectMember, { projectId, role: "owner" })) > 1) return;
  throw new ConnectError(
    `user ${userId} is the last owner of project ${projectId}; make another member an owner first`,
    Code.FailedPrecondition,
  );
}

/**
 * Takes a leaving member off the project's tasks, as a change of each task: a new version and
 * an activity entry with its assignees before and after. A fixed number of queries, however
 * many tasks they had.
 */
async function unassign(
  tx: SqlEntityManager,
  projectId: string,
  userId: string,
  actorId: string,
  at: Date,
): Promise<void> {
  const assigned = await tx.find(TaskAssignee, { projectId, userId }, { fields: ["taskId"] });
  if (assigned.length === 0) return;
  const taskIds = assigned.map((a) => a.taskId);
  const tasks = await tx.find(Task, { id: { $in: taskIds } });
  const linksOf = await loadLinks(tx, taskIds);
  await tx.nativeDelete(TaskAssignee, { projectId, userId });
  await tx.nativeUpdate(
    Task,
    { id: { $in: taskIds } },
    { version: raw("version + 1") as number, updatedAt: at, updatedBy: actorId },
  );
  for (const task of tasks) {
    const links = linksOf(task.id);
    const remaining = { ...links, assigneeIds: links.assigneeIds.filter((id) => id !== userId) };
    recordActivity(tx, {
      projectId,
      actorId,
      subjectType: "task",
      subjectId: task.id,
      action: "updated",
      changes: changedFields(TaskSchema, taskToProto(task, links), taskToProto(task, remaining), [
        "assignee_ids",
      ]),
      at,
    });
  }
}
