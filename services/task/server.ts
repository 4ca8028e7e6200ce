import { TaskService } from "../../gen/protomesh/task/v1/task_pb.ts";
import { createAuthInterceptor } from "../../kit/auth/auth-interceptor.ts";
import { createRemoteVerifier } from "../../kit/auth/remote-verifier.ts";
import type { Log } from "../../kit/log.ts";
import { bindService, createServer, type Server } from "../../kit/server.ts";
import type { TaskConfig } from "./config.ts";

/** What the task service is built from. */
export interface TaskServerDeps {
  readonly config: TaskConfig;
  readonly log: Log;
}

/**
 * Builds the task service (projects, tasks, comments and exports). Its RPCs are not implemented yet: every
 * method answers Unimplemented (after checking the caller's token as its auth policy says),
 * while health, reflection and metrics already work.
 */
export function createTaskServer({ config, log }: TaskServerDeps): Server {
  const verifier = createRemoteVerifier(config, log);
  return createServer({
    config,
    log,
    services: [bindService(TaskService, {})],
    interceptors: [createAuthInterceptor({ verifier, log })],
  });
}
