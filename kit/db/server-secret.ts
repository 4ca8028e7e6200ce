import { randomBytes } from "node:crypto";
import { type Database, Migration, type MigrationEntry } from "./database.ts";

class CreateServerSecrets extends Migration {
  override async up(): Promise<void> {
    this.addSql("create table server_secret (name text primary key, value bytea not null)");
  }
}

/** The table of per-database secrets, for services that sign page tokens or the like. */
export const serverSecretMigrations: readonly MigrationEntry[] = [
  { name: "kit-db-0001-server-secrets", class: CreateServerSecrets },
];

/**
 * A 256-bit secret generated the first time it is asked for and kept in the database, so every
 * instance of a service, and every restart, uses the same one.
 */
export async function loadServerSecret(db: Database, name: string): Promise<Uint8Array> {
  const em = db.fork();
  // Two instances starting together may both insert: the first wins, both read its value.
  await em.execute(
    "insert into server_secret (name, value) values (?, ?) on conflict (name) do nothing",
    [name, randomBytes(32)],
  );
  const [row] = await em.execute<{ value: Uint8Array }[]>(
    "select value from server_secret where name = ?",
    [name],
  );
  if (!row) throw new Error(`server secret ${name} vanished`);
  return new Uint8Array(row.value);
}
