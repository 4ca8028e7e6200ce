import { timestampDate } from "@bufbuild/protobuf/wkt";
import { createClient } from "@connectrpc/connect";
import { z } from "zod";
import { UserService } from "../../gen/protomesh/user/v1/user_pb.ts";
import {
  type ResiliencePolicy,
  resilienceConfigShape,
  resiliencePolicyOf,
} from "../balance/policy.ts";
import { createBalancedTransport } from "../balance/transport.ts";
import type { Log } from "../log.ts";
import type { RegistryConfig } from "../registry/config.ts";
import { openRegistry } from "../registry/open-registry.ts";
import type { Registry } from "../registry/registry.ts";
import { createRemoteKeySource } from "./jwks-source.ts";
import { pollRevocations, revocationConfigShape } from "./revocations.ts";
import { createTokenVerifier, type TokenVerifier } from "./token-verifier.ts";

/** Settings of a process that verifies the user service's tokens. */
export const authConfigShape = {
  /** The user service's instances when discovery is static (no CONSUL_HTTP_ADDR). */
  USER_SERVICE_URL: z.url().default("http://127.0.0.1:50051"),
  JWT_ISSUER: z.string().default("protomesh"),
  JWT_AUDIENCE: z.string().default("protomesh"),
  ...revocationConfigShape,
};

/** The settings createRemoteVerifier reads. */
export interface RemoteVerifierConfig extends RegistryConfig {
  readonly USER_SERVICE_URL: string | readonly string[];
  readonly JWT_ISSUER: string;
  readonly JWT_AUDIENCE: string;
  readonly DEFAULT_DEADLINE_MS: number;
  readonly REVOCATION_POLL_MS: number;
}

/** What a process may share with its verifier. */
export interface RemoteVerifierOptions {
  /** The process's registry; without one the verifier opens its own from the configuration. */
  readonly registry?: Registry;
  /** Balancing, breaker and retries of the verifier's calls; kit/balance's defaults otherwise. */
  readonly policy?: ResiliencePolicy;
}

/** A token verifier that calls the user service; close it with its process. */
export interface RemoteVerifier extends TokenVerifier {
  close(): void;
}

/**
 * A verifier for any process but the user service: keys come from the user service's GetJwks,
 * cached and refetched when a token names an unknown key, and the revoked accounts from its
 * ListRevocations, polled every REVOCATION_POLL_MS. The calls go to the instances the
 * registry reports (USER_SERVICE_URL, or Consul), through kit/balance like every other
 * service-to-service call.
 */
export function createRemoteVerifier(
  config: RemoteVerifierConfig,
  log: Log,
  options: RemoteVerifierOptions = {},
): RemoteVerifier {
  const registry =
    options.registry ??
    openRegistry(config, log, { [UserService.typeName]: config.USER_SERVICE_URL });
  const transport = createBalancedTransport({
    service: UserService.typeName,
    registry,
    policy: options.policy ?? resiliencePolicyOf(z.object(resilienceConfigShape).parse({})),
    defaultTimeoutMs: config.DEFAULT_DEADLINE_MS,
    log,
  });
  const users = createClient(UserService, transport);
  const keys = createRemoteKeySource({ fetchJwks: (signal) => users.getJwks({}, { signal }), log });
  const revocations = pollRevocations({
    fetch: async (signal) => {
      const { revocations } = await users.listRevocations({}, { signal });
      return revocations.map((r) => ({
        userId: r.userId,
        revokedBeforeSec: r.revokeTime ? timestampDate(r.revokeTime).getTime() / 1000 : 0,
      }));
    },
    intervalMs: config.REVOCATION_POLL_MS,
    log,
  });
  const verifier = createTokenVerifier({
    keys,
    issuer: config.JWT_ISSUER,
    audience: config.JWT_AUDIENCE,
    revocations,
  });
  return {
    verify: (token) => verifier.verify(token),
    close() {
      revocations.close();
      transport.close();
      if (options.registry === undefined) registry.close();
    },
  };
}
