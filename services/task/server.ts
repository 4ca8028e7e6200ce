import { TaskService } from "../../gen/protomesh/task/v1/task_pb.ts";
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
 * method answers Unimplemented, while health, reflection and metrics already work.
 */
export function createTaskServer({ config, log }: TaskServerDeps): Server {
  return createServer({ config, log, services: [bindService(TaskService, {})] });
}
