import type { ServiceImpl } from "@connectrpc/connect";
import { FileService } from "../../gen/protomesh/file/v1/file_pb.ts";
import { createAuthInterceptor } from "../../kit/auth/auth-interceptor.ts";
import { createRemoteVerifier } from "../../kit/auth/remote-verifier.ts";
import { type Database, openServiceDatabase } from "../../kit/db/database.ts";
import { loadServerSecret } from "../../kit/db/server-secret.ts";
import { createJobs, type Jobs, openTransport } from "../../kit/jobs/jobs.ts";
import type { Log } from "../../kit/log.ts";
import { createMetrics } from "../../kit/metrics.ts";
import { createPageTokens } from "../../kit/page-token.ts";
import type { Runnable } from "../../kit/run-process.ts";
import { bindService, createServer, type Server } from "../../kit/server.ts";
import type { FileConfig } from "./config.ts";
import { createDownloadRpcs } from "./download-rpcs.ts";
import { createDownloadUrls } from "./download-urls.ts";
import { fileEntities } from "./entities.ts";
import { createFileRpcs } from "./file-rpcs.ts";
import { fileMigrations } from "./migrations.ts";
import { createQuota } from "./quota.ts";
import { createSessionRpcs, sweepExpiredSessions } from "./session-rpcs.ts";
import { openStorage } from "./storage/open-storage.ts";
import type { FileStorage } from "./storage/storage.ts";
import { consumeThumbnails } from "./thumbnail-job.ts";
import { createUploadRpcs } from "./upload-rpcs.ts";

/** How often expired upload sessions and lapsed quota reservations are deleted. */
const sweepIntervalMs = 60_000;

/** What the file service is built from. */
export interface FileServerDeps {
  readonly config: FileConfig;
  readonly log: Log;
}

/** The running file service: its server, its database, storage and jobs. */
export interface FileServer extends Runnable {
  readonly server: Server;
  readonly db: Database;
  readonly storage: FileStorage;
  /** Its events (FileUploaded), and the thumbnailer that consumes them. */
  readonly jobs: Jobs;
  /** Deletes expired upload sessions now, as the periodic sweep does; returns how many. */
  sweep(): Promise<number>;
}

/**
 * Builds the file service: opens and migrates its database, opens the storage (a local
 * directory or S3), and wires uploads, resumable sessions, downloads and thumbnails behind
 * token verification.
 */
export async function createFileServer({ config, log }: FileServerDeps): Promise<FileServer> {
  const db = await openServiceDatabase("file", config, {
    entities: fileEntities,
    migrations: fileMigrations,
    log,
  });
  const storage = await openStorage(config);
  const metrics = createMetrics();
  const jobs = createJobs({
    source: "file",
    db,
    transport: openTransport(config.REDIS_URL, log),
    log,
    registry: metrics.registry,
  });
  consumeThumbnails(jobs, {
    db,
    storage,
    limitInputPixels: config.THUMBNAIL_MAX_INPUT_PIXELS,
  });
  const deps = {
    db,
    storage,
    jobs,
    config,
    quota: createQuota(db, {
      maxFileBytes: config.FILE_MAX_BYTES,
      quotaBytes: config.FILE_QUOTA_BYTES,
      // Longer than the longest upload may run.
      reservationTtlMs: 2 * 3600 * 1000,
    }),
    pageTokens: createPageTokens(await loadServerSecret(db, "page-tokens")),
    downloadUrls: createDownloadUrls(await loadServerSecret(db, "download-urls")),
  };
  // Every RPC of the contract: one left out fails to compile.
  const rpcs: ServiceImpl<typeof FileService> = {
    ...createUploadRpcs(deps),
    ...createSessionRpcs(deps),
    ...createFileRpcs(deps),
    ...createDownloadRpcs(deps),
  };
  const verifier = createRemoteVerifier(config, log);
  const server = createServer({
    config,
    log,
    metrics,
    services: [bindService(FileService, rpcs)],
    interceptors: [createAuthInterceptor({ verifier, log })],
  });
  const sweep = async () => {
    await db.fork().execute("delete from quota_reservation where expires_at <= now()");
    return sweepExpiredSessions(db, (key, state) => storage.staging.discard(key, state), log);
  };
  let sweeper: NodeJS.Timeout | undefined;
  return {
    server,
    db,
    storage,
    jobs,
    sweep,
    async listen() {
      const port = await server.listen();
      await jobs.start();
      sweeper = setInterval(() => {
        sweep().catch((err: unknown) => log.warn({ err }, "sweeping upload sessions failed"));
      }, sweepIntervalMs);
      sweeper.unref();
      return port;
    },
    async close() {
      clearInterval(sweeper);
      await server.close();
      await jobs.stop();
      verifier.close();
      await storage.close();
      await db.close();
    },
  };
}
