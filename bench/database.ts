import pg from "pg";
import { createDatabaseOn, dropDatabaseOn } from "../test/support/database.ts";

/** The PostgreSQL server the bench makes its scratch databases on, and asks about their backends. */
export interface PostgresServer {
  /** Creates an empty database and returns its URL; close() drops it again. */
  createDatabase(): Promise<string>;
  /** The ids of the server's processes (backends) connected to a database now. */
  backendPids(databaseUrl: string): Promise<number[]>;
  /** Drops every database it created, disconnecting whoever still uses them, and disconnects. */
  close(): Promise<void>;
}

/** Connects to a PostgreSQL server as a user who may create databases (trust auth will do). */
export async function connectPostgres(url: string): Promise<PostgresServer> {
  const admin = new pg.Client({ connectionString: url });
  try {
    await admin.connect();
  } catch (err) {
    await admin.end().catch(() => undefined);
    throw new Error(
      `the tasks suite needs PostgreSQL at ${url} (BENCH_DATABASE_URL): ${(err as Error).message}`,
    );
  }
  const created: string[] = [];
  return {
    async createDatabase() {
      const databaseUrl = await createDatabaseOn(url, "protomesh_bench");
      created.push(databaseUrl);
      return databaseUrl;
    },
    async backendPids(databaseUrl) {
      const { rows } = await admin.query<{ pid: number }>(
        "select pid from pg_stat_activity where datname = $1",
        [new URL(databaseUrl).pathname.slice(1)],
      );
      return rows.map((row) => row.pid);
    },
    async close() {
      try {
        for (const databaseUrl of created) await dropDatabaseOn(url, databaseUrl);
      } finally {
        await admin.end();
      }
    },
  };
}
