import { randomBytes } from "node:crypto";
import pg from "pg";

/** The PostgreSQL server the bench makes its scratch databases on, through one admin session. */
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
  const nameOf = (databaseUrl: string) => new URL(databaseUrl).pathname.slice(1);
  return {
    async createDatabase() {
      const name = `protomesh_bench_${randomBytes(6).toString("hex")}`;
      await admin.query(`create database ${name}`);
      created.push(name);
      const databaseUrl = new URL(url);
      databaseUrl.pathname = `/${name}`;
      return databaseUrl.toString();
    },
    async backendPids(databaseUrl) {
      const { rows } = await admin.query<{ pid: number }>(
        "select pid from pg_stat_activity where datname = $1",
        [nameOf(databaseUrl)],
      );
      return rows.map((row) => row.pid);
    },
    async close() {
      try {
        for (const name of created) await admin.query(`drop database ${name} with (force)`);
      } finally {
        await admin.end();
      }
    },
  };
}
