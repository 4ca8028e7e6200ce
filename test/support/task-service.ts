import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Client, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { type MemberRole, type Project, TaskService } from "../../gen/protomesh/task/v1/task_pb.ts";
import { loadConfig } from "../../kit/config.ts";
import { type TaskConfig, taskConfigSchema } from "../../services/task/config.ts";
import { createTaskServer, type TaskServer } from "../../services/task/server.ts";
import { createEmptyDatabase, dropDatabase } from "./database.ts";
import { type FileServiceUnderTest, startFileService } from "./file-service.ts";
import { useStarted } from "./use-started.ts";
import {
  bearer,
  signUpUsers,
  startUserService,
  type TestUser,
  testLog,
  testPassword,
  type UserServiceUnderTest,
  verificationTokenOf,
  waitForEml,
} from "./user-service.ts";

/** A client of the task service. */
export type TaskClient = Client<typeof TaskService>;

export type { TestUser };

/**
 * The task service in-process, on its own port and database, with a user service and a file
 * service (which trusts that user service) beside it.
 */
export interface TaskServiceUnderTest {
  readonly config: TaskConfig;
  readonly service: TaskServer;
  readonly users: UserServiceUnderTest;
  /** Where the task service finds the files users attach. */
  readonly files: FileServiceUnderTest;
  readonly baseUrl: string;
  /** The Connect protocol with JSON bodies over HTTP/1.1. */
  readonly connect: TaskClient;
  /** gRPC over HTTP/2, as other services talk. */
  readonly grpc: TaskClient;
  /** Moves the service's clock (statistics, timestamps); `undefined` follows the real one. */
  setNow(now: Date | undefined): void;
  /** Registers and logs in a new user per label, concurrently. */
  signUp<const L extends readonly string[]>(...labels: L): Promise<{ [K in keyof L]: TestUser }>;
  /** Creates a project of `owner` with the given members in their roles. */
  projectWith(
    owner: TestUser,
    name: string,
    members?: readonly (readonly [TestUser, MemberRole])[],
  ): Promise<Project>;
  /** Registers, verifies and logs in the ADMIN_EMAIL account. */
  signUpAdmin(): Promise<TestUser>;
  /** Runs `work` and returns the SQL statements the task service ran meanwhile. */
  queriesDuring(work: () => Promise<unknown>): Promise<string[]>;
  close(): Promise<void>;
}

const adminEmail = "task-admin@example.com";

/**
 * Starts the task service (startTaskService) before the calling test file's tests and closes
 * it after them. The object returned stands for the running service from then on.
 */
export function useTaskService(env: Readonly<Record<string, string>> = {}): TaskServiceUnderTest {
  return useStarted("the task service", () => startTaskService(env));
}

/**
 * Starts a user service, a file service and a task service in this process, each with a fresh
 * database (on the real PostgreSQL server when TEST_DATABASE_URL is set, else PGlite).
 */
export async function startTaskService(
  env: Readonly<Record<string, string>> = {},
): Promise<TaskServiceUnderTest> {
  // The task tests' accounts log in without verifying their email.
  const users = await startUserService({
    ADMIN_EMAIL: adminEmail,
    LOGIN_REQUIRE_VERIFIED_EMAIL: "false",
  });
  const files = await startFileService({}, { users });
  const dataDir = await mkdtemp(join(tmpdir(), "protomesh-task-test-"));
  const databaseUrl = await createEmptyDatabase();
  const config = loadConfig(taskConfigSchema, {
    PORT: "0",
    HOST: "127.0.0.1",
    DATA_DIR: dataDir,
    DATABASE_URL: databaseUrl,
    USER_SERVICE_URL: users.baseUrl,
    FILE_SERVICE_URL: files.baseUrl,
    LOG_LEVEL: "silent",
    ...env,
  });
  let now: Date | undefined;
  const service = await createTaskServer({
    config,
    log: testLog,
    clock: () => (now === undefined ? new Date() : new Date(now)),
  });
  const port = await service.listen();
  const baseUrl = `http://127.0.0.1:${port}`;
  const signedIn = async (email: string, id: string) => {
    const login = await users.connect.login({ email, password: testPassword });
    return { id, email, call: bearer(login.accessToken) };
  };
  const connect = createClient(
    TaskService,
    createConnectTransport({ baseUrl, httpVersion: "1.1", useBinaryFormat: false }),
  );
  return {
    config,
    service,
    users,
    files,
    baseUrl,
    connect,
    grpc: createClient(TaskService, createGrpcTransport({ baseUrl })),
    setNow(date) {
      now = date;
    },
    signUp: (...labels) => signUpUsers(users.connect, labels),
    async projectWith(owner, name, members = []) {
      const project = await connect.createProject({ project: { name } }, owner.call);
      for (const [user, role] of members) {
        await connect.addMember(
          { projectId: project.id, member: { userId: user.id, role } },
          owner.call,
        );
      }
      return project;
    },
    async signUpAdmin() {
      const user = await users.connect.register({
        email: adminEmail,
        password: testPassword,
        displayName: "Admin",
      });
      const mail = await waitForEml(users.mailDir, adminEmail);
      await users.connect.verifyEmail({ token: verificationTokenOf(mail) });
      return signedIn(adminEmail, user.id);
    },
    async queriesDuring(work) {
      const queries: string[] = [];
      service.db.orm.config.set("onQuery", (sql: string) => {
        queries.push(sql);
        return sql;
      });
      try {
        await work();
      } finally {
        service.db.orm.config.set("onQuery", (sql: string) => sql);
      }
      return queries;
    },
    async close() {
      await service.close();
      await files.close();
      await users.close();
      if (databaseUrl) await dropDatabase(databaseUrl);
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** Parses RFC 4180 CSV (CRLF records, quoted fields with doubled quotes) into rows of fields. */
export function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = "";
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        field += '"';
        i++;
      } else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ",") {
      row.push(field);
      field = "";
    } else if (c === "\r" && text[i + 1] === "\n") {
      row.push(field);
      rows.push(row);
      row = [];
      field = "";
      i++;
    } else field += c;
  }
  if (field !== "" || row.length > 0) throw new Error("the CSV does not end with CRLF");
  return rows;
}
