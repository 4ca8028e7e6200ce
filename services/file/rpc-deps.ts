import type { ServiceImpl } from "@connectrpc/connect";
import type { FileService } from "../../gen/protomesh/file/v1/file_pb.ts";
import type { Database } from "../../kit/db/database.ts";
import type { Jobs } from "../../kit/jobs/jobs.ts";
import type { PageTokens } from "../../kit/page-token.ts";
import type { FileConfig } from "./config.ts";
import type { DownloadUrls } from "./download-urls.ts";
import type { Quota } from "./quota.ts";
import type { FileStorage } from "./storage/storage.ts";

/** What the file service's RPCs are built from; each group of RPCs takes what it uses. */
export interface RpcDeps {
  readonly db: Database;
  readonly storage: FileStorage;
  readonly jobs: Jobs;
  readonly quota: Quota;
  readonly pageTokens: PageTokens;
  readonly downloadUrls: DownloadUrls;
  readonly config: FileConfig;
}

/** Some RPCs of the file service's implementation, by method name. */
export type FileRpcs<K extends keyof ServiceImpl<typeof FileService>> = Pick<
  ServiceImpl<typeof FileService>,
  K
>;
