import { UserService } from "../../gen/protomesh/user/v1/user_pb.ts";
import type { Log } from "../../kit/log.ts";
import { bindService, createServer, type Server } from "../../kit/server.ts";
import type { UserConfig } from "./config.ts";

/** What the user service is built from. */
export interface UserServerDeps {
  readonly config: UserConfig;
  readonly log: Log;
}

/**
 * Builds the user service (accounts, sign-in and tokens). Its RPCs are not implemented yet: every
 * method answers Unimplemented, while health, reflection and metrics already work.
 */
export function createUserServer({ config, log }: UserServerDeps): Server {
  return createServer({ config, log, services: [bindService(UserService, {})] });
}
