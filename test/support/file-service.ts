import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { type Client, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import {
  type File,
  FileService,
  type UploadRequestSchema,
} from "../../gen/protomesh/file/v1/file_pb.ts";
import { loadConfig } from "../../kit/config.ts";
import { type FileConfig, fileConfigSchema } from "../../services/file/config.ts";
import { createFileServer, type FileServer } from "../../services/file/server.ts";
import { createEmptyDatabase, dropDatabase } from "./database.ts";
import { useStarted } from "./use-started.ts";
import {
  signUpUsers,
  startUserService,
  type TestUser,
  testLog,
  type UserServiceUnderTest,
} from "./user-service.ts";

/** A client of the file service. */
export type FileClient = Client<typeof FileService>;

/** The file service in-process, on its own port, database and data directory, with a user service. */
export interface FileServiceUnderTest {
  readonly config: FileConfig;
  readonly service: FileServer;
  readonly users: UserServiceUnderTest;
  readonly baseUrl: string;
  /** Where the local storage keeps content. */
  readonly dataDir: string;
  /** The Connect protocol over HTTP/2 with binary messages. */
  readonly connect: FileClient;
  /** gRPC over HTTP/2, as other services talk. */
  readonly grpc: FileClient;
  /** Registers and logs in a new user per label, concurrently. */
  signUp<const L extends readonly string[]>(...labels: L): Promise<{ [K in keyof L]: TestUser }>;
  /** Uploads `content` in chunks of at most `chunkBytes` as `user`. */
  upload(
    user: TestUser,
    metadata: Partial<UploadMetadataInit>,
    content: Uint8Array,
    chunkBytes?: number,
  ): Promise<File>;
  close(): Promise<void>;
}

/** The metadata of an upload, as a client builds it. */
export interface UploadMetadataInit {
  filename: string;
  contentType: string;
  sizeBytes: bigint;
  sha256: string;
}

/**
 * Starts the file service (startFileService) before the calling test file's tests and closes it
 * after them. The object returned stands for the running service from then on.
 */
export function useFileService(env: Readonly<Record<string, string>> = {}): FileServiceUnderTest {
  return useStarted("the file service", () => startFileService(env));
}

/**
 * Starts a user service and a file service in this process, each with a fresh database (on the
 * real PostgreSQL server when TEST_DATABASE_URL is set, else PGlite); the files go to a local
 * directory unless `env` says otherwise. Given `users`, the file service trusts that running
 * user service instead, and leaves it running when closed.
 */
export async function startFileService(
  env: Readonly<Record<string, string>> = {},
  shared: { readonly users?: UserServiceUnderTest } = {},
): Promise<FileServiceUnderTest> {
  const users = shared.users ?? (await startUserService({ LOGIN_REQUIRE_VERIFIED_EMAIL: "false" }));
  const dataDir = await mkdtemp(join(tmpdir(), "protomesh-file-test-"));
  const databaseUrl = await createEmptyDatabase();
  const config = loadConfig(fileConfigSchema, {
    PORT: "0",
    HOST: "127.0.0.1",
    DATA_DIR: dataDir,
    DATABASE_URL: databaseUrl,
    USER_SERVICE_URL: users.baseUrl,
    LOG_LEVEL: "silent",
    ...env,
  });
  const service = await createFileServer({ config, log: testLog });
  const port = await service.listen();
  const baseUrl = `http://127.0.0.1:${port}`;
  const connect = createClient(FileService, createConnectTransport({ baseUrl, httpVersion: "2" }));
  return {
    config,
    service,
    users,
    baseUrl,
    dataDir,
    connect,
    grpc: createClient(FileService, createGrpcTransport({ baseUrl })),
    signUp: (...labels) => signUpUsers(users.connect, labels),
    upload(user, metadata, content, chunkBytes = 64 * 1024) {
      return connect.upload(uploadMessages(metadata, content, chunkBytes), user.call);
    },
    async close() {
      await service.close();
      if (shared.users === undefined) await users.close();
      if (databaseUrl) await dropDatabase(databaseUrl);
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** The messages of an Upload: the metadata, then the content in chunks. */
export async function* uploadMessages(
  metadata: Partial<UploadMetadataInit>,
  content: Uint8Array,
  chunkBytes = 64 * 1024,
): AsyncGenerator<MessageInitShape<typeof UploadRequestSchema>> {
  yield { payload: { case: "metadata", value: { filename: "file.bin", ...metadata } } };
  for (let at = 0; at < content.byteLength; at += chunkBytes) {
    yield { payload: { case: "chunk", value: content.subarray(at, at + chunkBytes) } };
  }
}
