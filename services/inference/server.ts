import { InferenceService } from "../../gen/protomesh/inference/v1/inference_pb.ts";
import type { Log } from "../../kit/log.ts";
import { bindService, createServer, type Server } from "../../kit/server.ts";
import type { InferenceConfig } from "./config.ts";

/** What the inference service is built from. */
export interface InferenceServerDeps {
  readonly config: InferenceConfig;
  readonly log: Log;
}

/**
 * Builds the inference service (question answering over documents). Its RPCs are not implemented yet: every
 * method answers Unimplemented, while health, reflection and metrics already work.
 */
export function createInferenceServer({ config, log }: InferenceServerDeps): Server {
  return createServer({ config, log, services: [bindService(InferenceService, {})] });
}
