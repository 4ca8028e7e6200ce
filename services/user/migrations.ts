import { Migration, type MigrationEntry } from "../../kit/db/database.ts";
import { serverSecretMigrations } from "../../kit/db/server-secret.ts";
import { jobMigrations } from "../../kit/jobs/migrations.ts";

class CreateAccounts extends Migration {
  override async up(): Promise<void> {
    this.addSql(`create table app_user (
      id uuid primary key,
      email text not null unique,
      password_hash text not null,
      display_name text not null,
      role text not null check (role in ('member', 'admin')),
      email_verified boolean not null default false,
      created_at timestamptz not null,
      updated_at timestamptz not null
    )`);
    // ListUsers pages in (created_at, id) order.
    this.addSql("create index app_user_created on app_user (created_at, id)");
    this.addSql(`create table refresh_token (
      id uuid primary key,
      token_hash text not null unique,
      family_id uuid not null,
      user_id uuid not null references app_user (id) on delete cascade,
      created_at timestamptz not null,
      expires_at timestamptz not null,
      rotated_at timestamptz,
      revoked_at timestamptz
    )`);
    this.addSql("create index refresh_token_family on refresh_token (family_id)");
    this.addSql(`create table verification_token (
      token_hash text primary key,
      user_id uuid not null references app_user (id) on delete cascade,
      expires_at timestamptz not null,
      used_at timestamptz
    )`);
    this.addSql(`create table signing_key (
      kid text primary key,
      alg text not null,
      private_jwk jsonb not null,
      public_jwk jsonb not null,
      created_at timestamptz not null,
      retired_at timestamptz
    )`);
    this.addSql(`create table login_throttle (
      email text primary key,
      failures integer not null,
      locked_until timestamptz
    )`);
  }
}

class AddRevocations extends Migration {
  override async up(): Promise<void> {
    this.addSql("alter table app_user add column disabled boolean not null default false");
    // One row per account, kept after the account is deleted: its tokens stay refused.
    this.addSql(`create table token_revocation (
      user_id uuid primary key,
      revoked_before timestamptz not null
    )`);
    this.addSql(
      "create index token_revocation_revoked_before on token_revocation (revoked_before)",
    );
  }
}

class StreamPerEventType extends Migration {
  override async up(): Promise<void> {
    // One stream per event type: registrations not relayed yet go to theirs.
    this.addSql("update outbox_event set stream = 'user.registered' where stream = 'user.events'");
  }
}

/** The user service's schema, in order: the toolkit's tables, then its own. */
export const userMigrations: readonly MigrationEntry[] = [
  ...serverSecretMigrations,
  ...jobMigrations,
  { name: "user-0001-accounts", class: CreateAccounts },
  { name: "user-0002-revocations", class: AddRevocations },
  { name: "user-0003-stream-per-event-type", class: StreamPerEventType },
];
