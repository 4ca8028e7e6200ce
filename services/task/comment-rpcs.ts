import { randomUUID } from "node:crypto";
import { requireIdentity } from "../../kit/auth/identity.ts";
import { createKeyset, findPage } from "../../kit/db/keyset.ts";
import { parseUuid } from "../../kit/uuid.ts";
import { findTask, holdOpen } from "./access.ts";
import { recordActivity } from "./activity.ts";
import { commentToProto } from "./convert.ts";
import { Comment, type CommentRow, Task, type TaskRow } from "./entities.ts";
import { lockForChange } from "./locking.ts";
import type { RpcDeps, TaskRpcs } from "./rpc-deps.ts";
import { limits, requiredText } from "./validation.ts";

// Oldest first, as ListComments promises.
const oldestFirst = createKeyset<CommentRow>({
  key: "createdAt",
  kind: "date",
  direction: "asc",
  tieBreaker: "id",
});

/** Commenting on tasks and reading the comments. */
export function createCommentRpcs({
  db,
  pageTokens,
  clock,
}: RpcDeps): TaskRpcs<"createComment" | "listComments"> {
  return {
    async createComment(req, ctx) {
      const caller = requireIdentity(ctx);
      const taskId = parseUuid(req.taskId, "task_id");
      const em = db.fork();
      const { projectId } = await findTask(em, taskId, ctx, "write");
      const row: CommentRow = {
        id: randomUUID(),
        taskId,
        authorId: caller.userId,
        body: requiredText(req.comment?.body ?? "", "body", limits.commentBody),
        createdAt: clock(),
      };
      await em.transactional(async (tx) => {
        await holdOpen(tx, projectId);
        // A comment changes the task's etag and count, one comment at a time.
        const task = await lockForChange<TaskRow>(tx, Task, "task", taskId, "");
        tx.assign(task, { commentCount: task.commentCount + 1, version: task.version + 1 });
        tx.create(Comment, row);
        recordActivity(tx, {
          projectId,
          actorId: caller.userId,
          subjectType: "comment",
          subjectId: row.id,
          action: "created",
          at: row.createdAt,
        });
      });
      return commentToProto(row);
    },

    async listComments(req, ctx) {
      const taskId = parseUuid(req.taskId, "task_id");
      const em = db.fork();
      await findTask(em, taskId, ctx, "read");
      const { rows, nextPageToken } = await findPage(em, Comment, { taskId }, req, {
        keyset: oldestFirst,
        tokens: pageTokens,
        scope: `comments:${taskId}`,
      });
      return { comments: rows.map(commentToProto), nextPageToken };
    },
  };
}
