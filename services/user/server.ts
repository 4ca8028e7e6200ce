import type { ServiceImpl } from "@connectrpc/connect";
import { UserService } from "../../gen/protomesh/user/v1/user_pb.ts";
import { createAuthInterceptor } from "../../kit/auth/auth-interceptor.ts";
import { createTokenVerifier } from "../../kit/auth/token-verifier.ts";
import { openServiceDatabase } from "../../kit/db/database.ts";
import { loadServerSecret } from "../../kit/db/server-secret.ts";
import { createJobs, type Jobs, openTransport } from "../../kit/jobs/jobs.ts";
import type { Log } from "../../kit/log.ts";
import { createMailer } from "../../kit/mail/mailer.ts";
import { createMetrics } from "../../kit/metrics.ts";
import { createPageTokens } from "../../kit/page-token.ts";
import type { Runnable } from "../../kit/run-process.ts";
import { bindService, createServer, type Server } from "../../kit/server.ts";
import { createAccountRpcs } from "./account-rpcs.ts";
import type { UserConfig } from "./config.ts";
import { createCurrentRoleInterceptor } from "./current-role.ts";
import { userEntities } from "./entities.ts";
import { loadSigningKeys } from "./keys.ts";
import { userMigrations } from "./migrations.ts";
import { createPasswordCheck } from "./password-check.ts";
import { createRevocationRpcs } from "./revocation-rpcs.ts";
import { createRevocations } from "./revocations.ts";
import { createSessionRpcs } from "./session-rpcs.ts";
import { consumeVerificationMail } from "./verification-mail.ts";

/** What the user service is built from. */
export interface UserServerDeps {
  readonly config: UserConfig;
  readonly log: Log;
}

/** The running user service: its server, and the lifecycle of everything behind it. */
export interface UserServer extends Runnable {
  readonly server: Server;
  /** Its events (see userStreams), for consumers in the same process. */
  readonly jobs: Jobs;
}

/**
 * Builds the user service: opens and migrates its database, loads (or creates) its signing
 * keys, and wires the account and session RPCs, token verification and the verification mail.
 */
export async function createUserServer({ config, log }: UserServerDeps): Promise<UserServer> {
  const db = await openServiceDatabase("user", config, {
    entities: userEntities,
    migrations: userMigrations,
    log,
  });
  const keys = await loadSigningKeys(db, { log });
  const metrics = createMetrics();
  const jobs = createJobs({
    source: "user",
    db,
    transport: openTransport(config.REDIS_URL, log),
    log,
    registry: metrics.registry,
  });
  const mailer = createMailer({
    smtpUrl: config.SMTP_URL,
    dir: `${config.DATA_DIR}/mail`,
    from: config.MAIL_FROM,
    log,
  });
  consumeVerificationMail(jobs, mailer, config.PUBLIC_URL);
  const pageTokens = createPageTokens(await loadServerSecret(db, "page-tokens"));
  const revocations = createRevocations(db, config, log);
  const passwords = createPasswordCheck(db, config, log);
  // The user service verifies tokens with its own keys and revocations: it is the one that
  // publishes them.
  const verifier = createTokenVerifier({
    keys,
    issuer: config.JWT_ISSUER,
    audience: config.JWT_AUDIENCE,
    revocations: revocations.list,
  });
  // Every RPC of the contract: one left out fails to compile.
  const rpcs: ServiceImpl<typeof UserService> = {
    ...createAccountRpcs({ db, jobs, keys, pageTokens, config, revocations, passwords }),
    ...createSessionRpcs({ db, keys, config, log, passwords, revocations }),
    ...createRevocationRpcs(revocations),
  };
  const server = createServer({
    config,
    log,
    metrics,
    services: [bindService(UserService, rpcs)],
    interceptors: [createAuthInterceptor({ verifier, log }), createCurrentRoleInterceptor(db)],
  });
  return {
    server,
    jobs,
    async listen() {
      const port = await server.listen();
      await jobs.start();
      return port;
    },
    async close() {
      await server.close();
      await jobs.stop();
      revocations.list.close();
      mailer.close();
      keys.close();
      await db.close();
    },
  };
}
