import type { ServiceImpl } from "@connectrpc/connect";
import type { TaskService } from "../../gen/protomesh/task/v1/task_pb.ts";
import type { Database } from "../../kit/db/database.ts";
import type { PageTokens } from "../../kit/page-token.ts";
import type { FileLookup } from "./attachments.ts";
import type { UserDirectory } from "./user-directory.ts";

/** What the task service's RPCs are built from; each group of RPCs takes what it uses. */
export interface RpcDeps {
  readonly db: Database;
  /** Which users exist, from the user service. */
  readonly users: UserDirectory;
  /** The metadata of the caller's files, from the file service. */
  readonly files: FileLookup;
  readonly pageTokens: PageTokens;
  /** The time of changes and statistics; tests pass their own. */
  readonly clock: () => Date;
}

/** Some RPCs of the task service's implementation, by method name. */
export type TaskRpcs<K extends keyof ServiceImpl<typeof TaskService>> = Pick<
  ServiceImpl<typeof TaskService>,
  K
>;
