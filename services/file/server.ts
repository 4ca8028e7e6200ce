import { FileService } from "../../gen/protomesh/file/v1/file_pb.ts";
import { createAuthInterceptor } from "../../kit/auth/auth-interceptor.ts";
import { createRemoteVerifier } from "../../kit/auth/remote-verifier.ts";
import type { Log } from "../../kit/log.ts";
import { bindService, createServer, type Server } from "../../kit/server.ts";
import type { FileConfig } from "./config.ts";

/** What the file service is built from. */
export interface FileServerDeps {
  readonly config: FileConfig;
  readonly log: Log;
}

/**
 * Builds the file service (uploads, downloads and thumbnails). Its RPCs are not implemented yet: every
 * method answers Unimplemented (after checking the caller's token as its auth policy says),
 * while health, reflection and metrics already work.
 */
export function createFileServer({ config, log }: FileServerDeps): Server {
  const verifier = createRemoteVerifier(config, log);
  return createServer({
    config,
    log,
    services: [bindService(FileService, {})],
    interceptors: [createAuthInterceptor({ verifier, log })],
  });
}
