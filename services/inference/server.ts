import { InferenceService } from "../../gen/protomesh/inference/v1/inference_pb.ts";
import { createAuthInterceptor } from "../../kit/auth/auth-interceptor.ts";
import { createRemoteVerifier } from "../../kit/auth/remote-verifier.ts";
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
 * method answers Unimplemented (after checking the caller's token as its auth policy says),
 * while health, reflection and metrics already work.
 */
export function createInferenceServer({ config, log }: InferenceServerDeps): Server {
  const verifier = createRemoteVerifier(config, log);
  return createServer({
    config,
    log,
    services: [bindService(InferenceService, {})],
    interceptors: [createAuthInterceptor({ verifier, log })],
  });
}
