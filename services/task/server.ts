import { createClient, type ServiceImpl } from "@connectrpc/connect";
import { FileService } from "../../gen/protomesh/file/v1/file_pb.ts";
import { TaskService } from "../../gen/protomesh/task/v1/task_pb.ts";
import { UserService } from "../../gen/protomesh/user/v1/user_pb.ts";
import { createAuthInterceptor } from "../../kit/auth/auth-interceptor.ts";
import { createRemoteVerifier } from "../../kit/auth/remote-verifier.ts";
import { resiliencePolicyOf } from "../../kit/balance/policy.ts";
import { createBalancedTransport } from "../../kit/balance/transport.ts";
import { type Database, openServiceDatabase } from "../../kit/db/database.ts";
import { loadServerSecret } from "../../kit/db/server-secret.ts";
import type { Log } from "../../kit/log.ts";
import { createPageTokens } from "../../kit/page-token.ts";
import { openRegistry } from "../../kit/registry/open-registry.ts";
import type { Runnable } from "../../kit/run-process.ts";
import { bindService, createServer, type Server } from "../../kit/server.ts";
import { createActivityRpcs } from "./activity-rpcs.ts";
import { createCommentRpcs } from "./comment-rpcs.ts";
import type { TaskConfig } from "./config.ts";
import { taskEntities } from "./entities.ts";
import { createExportRpcs } from "./export-rpcs.ts";
import { createMemberRpcs } from "./member-rpcs.ts";
import { taskMigrations } from "./migrations.ts";
import { createProjectRpcs } from "./project-rpcs.ts";
import { createStatsRpcs } from "./stats-rpcs.ts";
import { createTaskListRpcs } from "./task-list-rpcs.ts";
import { createTaskRpcs } from "./task-rpcs.ts";
import { createUserDirectory } from "./user-directory.ts";

/** What the task service is built from. */
export interface TaskServerDeps {
  readonly config: TaskConfig;
  readonly log: Log;
  /** The clock of statistics and timestamps; tests pass their own. */
  readonly clock?: () => Date;
}

/** The running task service: its server, its database, and the lifecycle of both. */
export interface TaskServer extends Runnable {
  readonly server: Server;
  readonly db: Database;
}

/**
 * Builds the task service: opens and migrates its database, and wires projects, members,
 * tasks, comments, statistics, the activity log and the exports behind token verification.
 * Users are looked up in the user service, and attached files in the file service, through
 * their generated clients.
 */
export async function createTaskServer({
  config,
  log,
  clock = () => new Date(),
}: TaskServerDeps): Promise<TaskServer> {
  const db = await openServiceDatabase("task", config, {
    entities: taskEntities,
    migrations: taskMigrations,
    log,
  });
  const pageTokens = createPageTokens(await loadServerSecret(db, "page-tokens"));
  // The user and file services' instances, from the registry (USER_SERVICE_URL and
  // FILE_SERVICE_URL, or Consul), called with the gateway's balancing, breaker and retries.
  const registry = openRegistry(config, log, {
    [UserService.typeName]: config.USER_SERVICE_URL,
    [FileService.typeName]: config.FILE_SERVICE_URL,
  });
  const policy = resiliencePolicyOf(config);
  const transportTo = (service: string) =>
    createBalancedTransport({
      service,
      registry,
      policy,
      defaultTimeoutMs: config.DEFAULT_DEADLINE_MS,
      log,
    });
  const userTransport = transportTo(UserService.typeName);
  const fileTransport = transportTo(FileService.typeName);
  const users = createUserDirectory(createClient(UserService, userTransport), {
    ttlMs: config.USER_LOOKUP_CACHE_MS,
  });
  const files = createClient(FileService, fileTransport);
  const deps = { db, users, files, pageTokens, clock };
  // Typed as the whole service, so that an RPC left out fails to compile.
  const rpcs: ServiceImpl<typeof TaskService> = {
    ...createProjectRpcs(deps),
    ...createMemberRpcs(deps),
    ...createTaskRpcs(deps),
    ...createTaskListRpcs(deps),
    ...createCommentRpcs(deps),
    ...createStatsRpcs(deps),
    ...createActivityRpcs(deps),
    ...createExportRpcs(deps),
  };
  const verifier = createRemoteVerifier(config, log, { registry, policy });
  const server = createServer({
    config,
    log,
    services: [bindService(TaskService, rpcs)],
    interceptors: [createAuthInterceptor({ verifier, log })],
  });
  return {
    server,
    db,
    listen: () => server.listen(),
    async close() {
      await server.close();
      userTransport.close();
      fileTransport.close();
      verifier.close();
      registry.close();
      await db.close();
    },
  };
}
