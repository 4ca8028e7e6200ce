import { FileService } from "../../gen/protomesh/file/v1/file_pb.ts";
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
 * method answers Unimplemented, while health, reflection and metrics already work.
 */
export function createFileServer({ config, log }: FileServerDeps): Server {
  return createServer({ config, log, services: [bindService(FileService, {})] });
}
