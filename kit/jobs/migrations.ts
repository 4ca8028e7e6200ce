import { Migration, type MigrationEntry } from "../db/database.ts";

class CreateJobTables extends Migration {
  override async up(): Promise<void> {
    this.addSql(`create table outbox_event (
      seq bigserial primary key,
      id uuid not null unique,
      stream text not null,
      envelope bytea not null,
      created_at timestamptz not null default now()
    )`);
    // One row per event a consumer group has handled, written in the same transaction as the
    // handler's own changes: a redelivered event finds its row and is skipped.
    this.addSql(`create table processed_event (
      consumer_group text not null,
      event_id uuid not null,
      processed_at timestamptz not null default now(),
      primary key (consumer_group, event_id)
    )`);
  }
}

/** The tables of the outbox and of idempotent consumption, for every service that uses jobs. */
export const jobMigrations: readonly MigrationEntry[] = [
  { name: "kit-jobs-0001-outbox-and-processed-events", class: CreateJobTables },
];
