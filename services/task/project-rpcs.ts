import { randomUUID } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import {
  type Project as ProjectMessage,
  ProjectSchema,
} from "../../gen/protomesh/task/v1/task_pb.ts";
import { requireIdentity } from "../../kit/auth/identity.ts";
import { createKeyset, findPage } from "../../kit/db/keyset.ts";
import { parseUuid } from "../../kit/uuid.ts";
import { authorize, refuseArchived } from "./access.ts";
import { changedFields, recordActivity } from "./activity.ts";
import { projectToProto } from "./convert.ts";
import { Project, ProjectMember, type ProjectRow } from "./entities.ts";
import { lockForChange } from "./locking.ts";
import type { RpcDeps, TaskRpcs } from "./rpc-deps.ts";
import { inSubquery } from "./subquery.ts";
import { fieldsToUpdate, limits, optionalText, requiredText } from "./validation.ts";

const updatableProjectFields = ["name", "description", "archived"] as const;

// Most recently created first, as ListProjects promises.
const newestFirst = createKeyset<ProjectRow>({
  key: "createdAt",
  kind: "date",
  direction: "desc",
  tieBreaker: "id",
});

/** Creating, listing, reading, changing and deleting projects. */
export function createProjectRpcs({
  db,
  pageTokens,
  clock,
}: RpcDeps): TaskRpcs<
  "createProject" | "listProjects" | "getProject" | "updateProject" | "deleteProject"
> {
  return {
    async createProject(req, ctx) {
      const caller = requireIdentity(ctx);
      const input = req.project ?? create(ProjectSchema);
      const now = clock();
      const row: ProjectRow = {
        id: randomUUID(),
        name: requiredText(input.name, "name", limits.projectName),
        description: optionalText(input.description, "description", limits.projectDescription),
        archived: input.archived,
        ownerId: caller.userId,
        version: 1,
        createdAt: now,
        updatedAt: now,
      };
      await db.fork().transactional(async (tx) => {
        tx.create(Project, row);
        tx.create(ProjectMember, {
          projectId: row.id,
          userId: caller.userId,
          role: "owner",
          createdAt: now,
        });
        const at = {
          projectId: row.id,
          actorId: caller.userId,
          action: "created",
          at: now,
        } as const;
        recordActivity(tx, { ...at, subjectType: "project", subjectId: row.id });
        recordActivity(tx, { ...at, subjectType: "member", subjectId: caller.userId });
      });
      return projectToProto(row);
    },

    async listProjects(req, ctx) {
      const caller = requireIdentity(ctx);
      const em = db.fork();
      const memberships = em
        .createQueryBuilder(ProjectMember, "m")
        .select("m.projectId")
        .where({ userId: caller.userId });
      const where = {
        $and: [
          inSubquery<ProjectRow>("id", memberships),
          req.showArchived ? {} : { archived: false },
        ],
      };
      const { rows, nextPageToken } = await findPage(em, Project, where, req, {
        keyset: newestFirst,
        tokens: pageTokens,
        scope: `projects:${caller.userId}:${req.showArchived}`,
      });
      return { projects: rows.map(projectToProto), nextPageToken };
    },

    async getProject(req, ctx) {
      const id = parseUuid(req.id, "id");
      const em = db.fork();
      return projectToProto(await authorize(em, requireIdentity(ctx), id, "read"));
    },

    async updateProject(req, ctx) {
      const caller = requireIdentity(ctx);
      const input = req.project ?? create(ProjectSchema);
      const id = parseUuid(input.id, "project.id");
      const fields = fieldsToUpdate(req.updateMask?.paths, updatableProjectFields);
      const em = db.fork();
      const values = readProjectValues(input, fields);
      // Unarchiving is the one change an archived project takes.
      await authorize(em, caller, id, "manage", { changes: values.archived !== false });
      return em.transactional(async (tx) => {
        const row = await lockForChange<ProjectRow>(tx, Project, "project", id, input.etag);
        if (values.archived !== false) refuseArchived(row);
        const before = projectToProto(row);
        const changes = changedFields(
          ProjectSchema,
          before,
          projectToProto({ ...row, ...values }),
          fields,
        );
        if (changes.length === 0) return before;
        tx.assign(row, { ...values, version: row.version + 1, updatedAt: clock() });
        recordActivity(tx, {
          projectId: id,
          actorId: caller.userId,
          subjectType: "project",
          subjectId: id,
          action: "updated",
          changes,
          at: row.updatedAt,
        });
        return projectToProto(row);
      });
    },

    async deleteProject(req, ctx) {
      const id = parseUuid(req.id, "id");
      const em = db.fork();
      // An archived project can still be deleted: deleting is not one of its changes.
      await authorize(em, requireIdentity(ctx), id, "manage", { changes: false });
      await em.transactional(async (tx) => {
        await lockForChange<ProjectRow>(tx, Project, "project", id, req.etag);
        // Members, tasks, comments, tags and the activity log go with it (on delete cascade).
        await tx.nativeDelete(Project, { id });
      });
      return {};
    },
  };
}

/** Reads and checks the given fields of a project from an update. */
function readProjectValues(
  input: ProjectMessage,
  fields: ReadonlySet<(typeof updatableProjectFields)[number]>,
): Partial<Pick<ProjectRow, "name" | "description" | "archived">> {
  return {
    ...(fields.has("name") ? { name: requiredText(input.name, "name", limits.projectName) } : {}),
    ...(fields.has("description")
      ? {
          description: optionalText(input.description, "description", limits.projectDescription),
        }
      : {}),
    ...(fields.has("archived") ? { archived: input.archived } : {}),
  };
}
