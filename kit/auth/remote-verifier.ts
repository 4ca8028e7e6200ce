import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { z } from "zod";
import { UserService } from "../../gen/protomesh/user/v1/user_pb.ts";
import type { Log } from "../log.ts";
import { createRemoteKeySource } from "./jwks-source.ts";
import { createTokenVerifier, type TokenVerifier } from "./token-verifier.ts";

/** Settings of a process that verifies the user service's tokens. */
export const authConfigShape = {
  /** Where the user service answers GetJwks. */
  USER_SERVICE_URL: z.url().default("http://127.0.0.1:50051"),
  JWT_ISSUER: z.string().default("protomesh"),
  JWT_AUDIENCE: z.string().default("protomesh"),
};

/** The settings createRemoteVerifier reads. */
export interface RemoteVerifierConfig {
  readonly USER_SERVICE_URL: string;
  readonly JWT_ISSUER: string;
  readonly JWT_AUDIENCE: string;
}

/**
 * A verifier for any process but the user service: keys come from the user service's GetJwks,
 * through its generated client, cached and refetched when a token names an unknown key.
 */
export function createRemoteVerifier(config: RemoteVerifierConfig, log: Log): TokenVerifier {
  const users = createClient(
    UserService,
    createConnectTransport({ baseUrl: config.USER_SERVICE_URL, httpVersion: "2" }),
  );
  const keys = createRemoteKeySource({ fetchJwks: (signal) => users.getJwks({}, { signal }), log });
  return createTokenVerifier({ keys, issuer: config.JWT_ISSUER, audience: config.JWT_AUDIENCE });
}
