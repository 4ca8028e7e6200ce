import { Migration, type MigrationEntry } from "../../kit/db/database.ts";
import { serverSecretMigrations } from "../../kit/db/server-secret.ts";
import { jobMigrations } from "../../kit/jobs/migrations.ts";

class CreateFiles extends Migration {
  override async up(): Promise<void> {
    this.addSql(`create table stored_file (
      id uuid primary key,
      owner_id uuid not null,
      filename text not null,
      content_type text not null,
      size_bytes bigint not null check (size_bytes >= 0),
      sha256 text not null,
      storage_key text not null unique,
      thumbnail_state text not null
        check (thumbnail_state in ('pending', 'ready', 'unsupported', 'failed')),
      thumbnail_key text,
      created_at timestamptz not null
    )`);
    // ListFiles pages in (created_at, id) order per owner; the quota sums sizes per owner.
    this.addSql("create index stored_file_owner_created on stored_file (owner_id, created_at, id)");
    this.addSql(`create table upload_session (
      id uuid primary key,
      owner_id uuid not null,
      filename text not null,
      content_type text not null,
      size_bytes bigint not null check (size_bytes >= 0),
      "offset" bigint not null check ("offset" between 0 and size_bytes),
      sha256 text,
      storage_key text not null unique,
      stage_state text not null,
      appending_until timestamptz,
      file_id uuid,
      expires_at timestamptz not null,
      created_at timestamptz not null
    )`);
    this.addSql("create index upload_session_owner on upload_session (owner_id)");
    this.addSql("create index upload_session_expires on upload_session (expires_at)");
    this.addSql(`create table quota_reservation (
      id uuid primary key,
      owner_id uuid not null,
      bytes bigint not null check (bytes >= 0),
      expires_at timestamptz not null
    )`);
    this.addSql("create index quota_reservation_owner on quota_reservation (owner_id)");
  }
}

/** The file service's schema, in order: the toolkit's tables, then its own. */
export const fileMigrations: readonly MigrationEntry[] = [
  ...serverSecretMigrations,
  ...jobMigrations,
  { name: "file-0001-files", class: CreateFiles },
];
