import { randomBytes } from "node:crypto";
import pg from "pg";
import { type Database, type DatabaseOptions, openDatabase } from "../../kit/db/database.ts";

/**
 * The real PostgreSQL server to test against (`.ci/run` sets it), or undefined for the
 * embedded PGlite that `npm test` uses on a machine with nothing installed.
 */
export const testDatabaseUrl = process.env.TEST_DATABASE_URL || undefined;

/** A database for one test file; close() also drops it from the real server. */
export interface TestDatabase extends Database {
  /** The URL of the fresh database on the real server, undefined for PGlite. */
  readonly url: string | undefined;
}

/**
 * Creates an empty database named `<prefix>_<random>` on the PostgreSQL server at `serverUrl`,
 * as its user (one who may create databases); returns the new database's URL.
 */
export async function createDatabaseOn(serverUrl: string, prefix: string): Promise<string> {
  const name = `${prefix}_${randomBytes(6).toString("hex")}`;
  await asAdmin(serverUrl, (admin) => admin.query(`create database ${name}`));
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

/** Drops a database made by createDatabaseOn, disconnecting whoever still uses it. */
export async function dropDatabaseOn(serverUrl: string, url: string): Promise<void> {
  const name = new URL(url).pathname.slice(1);
  await asAdmin(serverUrl, (admin) => admin.query(`drop database if exists ${name} with (force)`));
}

async function asAdmin(serverUrl: string, run: (admin: pg.Client) => Promise<unknown>) {
  const admin = new pg.Client({ connectionString: serverUrl });
  await admin.connect();
  try {
    await run(admin);
  } finally {
    await admin.end();
  }
}

/** Creates an empty database on the real server when there is one; returns its URL. */
export async function createEmptyDatabase(): Promise<string | undefined> {
  return testDatabaseUrl ? createDatabaseOn(testDatabaseUrl, "protomesh_test") : undefined;
}

/** Drops a database made by createEmptyDatabase, disconnecting whoever still uses it. */
export async function dropDatabase(url: string): Promise<void> {
  if (testDatabaseUrl) await dropDatabaseOn(testDatabaseUrl, url);
}

/** The databases of a test file's service processes. */
export interface ProcessDatabases {
  /**
   * The environment of one more service process: its own empty database on the real server
   * (DATABASE_URL) when there is one, else nothing (PGlite in the process's own DATA_DIR).
   */
  env(): Promise<Record<string, string>>;
  /** Drops every database `env` made. */
  dropAll(): Promise<void>;
}

/** Creates the databases of a test file's service processes, as they are started. */
export function createProcessDatabases(): ProcessDatabases {
  const urls: string[] = [];
  return {
    async env() {
      const url = await createEmptyDatabase();
      if (url === undefined) return {};
      urls.push(url);
      return { DATABASE_URL: url };
    },
    async dropAll() {
      await Promise.all(urls.splice(0).map(dropDatabase));
    },
  };
}

/** Opens a fresh, migrated database: on the real server if configured, else PGlite in memory. */
export async function openTestDatabase(
  options: Omit<DatabaseOptions, "service" | "url" | "dataDir">,
): Promise<TestDatabase> {
  const url = await createEmptyDatabase();
  const db = await openDatabase({ ...options, service: "test", url, dataDir: undefined });
  return {
    ...db,
    url,
    async close() {
      await db.close();
      if (url) await dropDatabase(url);
    },
  };
}
