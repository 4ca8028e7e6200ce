import { requireIdentity } from "../../kit/auth/identity.ts";
import { createKeyset, findPage } from "../../kit/db/keyset.ts";
import { parseUuid } from "../../kit/uuid.ts";
import { authorize } from "./access.ts";
import { activityToProto } from "./convert.ts";
import { Activity, type ActivityRow } from "./entities.ts";
import type { RpcDeps, TaskRpcs } from "./rpc-deps.ts";

// Newest first, as ListActivity promises: in the order the entries were written, reversed.
const newestFirst = createKeyset<ActivityRow>({
  key: "seq",
  kind: "number",
  direction: "desc",
  tieBreaker: "id",
});

/** Reading a project's activity log, page by page (ExportActivity has all of it as CSV). */
export function createActivityRpcs({ db, pageTokens }: RpcDeps): TaskRpcs<"listActivity"> {
  return {
    async listActivity(req, ctx) {
      const projectId = parseUuid(req.projectId, "project_id");
      const em = db.fork();
      await authorize(em, requireIdentity(ctx), projectId, "read");
      const { rows, nextPageToken } = await findPage(em, Activity, { projectId }, req, {
        keyset: newestFirst,
        tokens: pageTokens,
        scope: `activity:${projectId}`,
      });
      return { entries: rows.map(activityToProto), nextPageToken };
    },
  };
}
