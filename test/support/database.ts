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

/** Creates an empty database on the real server when there is one; returns its URL. */
export async function createEmptyDatabase(): Promise<string | undefined> {
  if (!testDatabaseUrl) return undefined;
  const name = `protomesh_test_${randomBytes(6).toString("hex")}`;
  const admin = new pg.Client({ connectionString: testDatabaseUrl });
  await admin.connect();
  try {
    await admin.query(`create database ${name}`);
  } finally {
    await admin.end();
  }
  const url = new URL(testDatabaseUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

/** Drops a database made by createEmptyDatabase, disconnecting whoever still uses it. */
export async function dropDatabase(url: string): Promise<void> {
  if (!testDatabaseUrl) return;
  const name = new URL(url).pathname.slice(1);
  const admin = new pg.Client({ connectionString: testDatabaseUrl });
  await admin.connect();
  try {
    await admin.query(`drop database if exists ${name} with (force)`);
  } finally {
    await admin.end();
  }
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
