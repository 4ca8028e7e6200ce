import { Migration, type MigrationEntry } from "../../kit/db/database.ts";
import { serverSecretMigrations } from "../../kit/db/server-secret.ts";

class CreateProjects extends Migration {
  override async up(): Promise<void> {
    this.addSql(`create table project (
      id uuid primary key,
      name text not null,
      description text not null,
      archived boolean not null,
      owner_id uuid not null,
      version integer not null,
      created_at timestamptz not null,
      updated_at timestamptz not null
    )`);
    this.addSql(`create table project_member (
      project_id uuid not null references project (id) on delete cascade,
      user_id uuid not null,
      role text not null check (role in ('owner', 'editor', 'viewer')),
      created_at timestamptz not null,
      primary key (project_id, user_id)
    )`);
    // ListProjects starts from the caller's memberships; ListMembers pages in the order added.
    this.addSql("create index project_member_user on project_member (user_id, project_id)");
    this.addSql(
      "create index project_member_added on project_member (project_id, created_at, user_id)",
    );
    this.addSql(`create table task (
      id uuid primary key,
      project_id uuid not null references project (id) on delete cascade,
      title text not null,
      description text not null,
      status text not null check (status in ('todo', 'in_progress', 'done', 'cancelled')),
      priority smallint not null check (priority between 1 and 4),
      due_at timestamptz,
      completed_at timestamptz,
      comment_count integer not null,
      created_by uuid not null,
      updated_by uuid not null,
      created_at timestamptz not null,
      updated_at timestamptz not null,
      version integer not null
    )`);
    // One index per ListTasks order, each ending in the id that breaks ties, so a page is
    // an index range scan whatever the project's size.
    for (const column of ["created_at", "updated_at", "due_at", "priority"]) {
      this.addSql(`create index task_by_${column} on task (project_id, ${column}, id)`);
    }
    // Undated tasks come last in both directions, so the descending order needs its own.
    this.addSql(
      "create index task_by_due_at_desc on task (project_id, due_at desc nulls last, id desc)",
    );
    this.addSql(
      "create index task_completed on task (project_id, completed_at) where completed_at is not null",
    );
    this.addSql(`create table task_assignee (
      task_id uuid not null references task (id) on delete cascade,
      user_id uuid not null,
      project_id uuid not null,
      position smallint not null,
      primary key (task_id, user_id),
      foreign key (project_id, user_id)
        references project_member (project_id, user_id) on delete cascade
    )`);
    this.addSql("create index task_assignee_user on task_assignee (project_id, user_id)");
    this.addSql(`create table tag (
      id uuid primary key,
      project_id uuid not null references project (id) on delete cascade,
      name text not null,
      unique (project_id, name)
    )`);
    this.addSql(`create table task_tag (
      task_id uuid not null references task (id) on delete cascade,
      tag_id uuid not null references tag (id) on delete cascade,
      position smallint not null,
      primary key (task_id, tag_id)
    )`);
    this.addSql("create index task_tag_tag on task_tag (tag_id)");
    this.addSql(`create table comment (
      id uuid primary key,
      task_id uuid not null references task (id) on delete cascade,
      author_id uuid not null,
      body text not null,
      created_at timestamptz not null
    )`);
    this.addSql("create index comment_task on comment (task_id, created_at, id)");
    // seq orders the log as it was written, also within one transaction's entries.
    this.addSql(`create table activity (
      seq bigserial primary key,
      id uuid not null unique,
      project_id uuid not null references project (id) on delete cascade,
      actor_id uuid not null,
      subject_type text not null check (subject_type in ('project', 'member', 'task', 'comment')),
      subject_id uuid not null,
      action text not null check (action in ('created', 'updated', 'deleted')),
      changes jsonb not null,
      created_at timestamptz not null
    )`);
    this.addSql("create index activity_project on activity (project_id, seq)");
  }
}

class CreateTaskAttachments extends Migration {
  override async up(): Promise<void> {
    // The primary key's leading task_id serves the page's one query and the cascade.
    this.addSql(`create table task_attachment (
      task_id uuid not null references task (id) on delete cascade,
      file_id uuid not null,
      filename text not null,
      size_bytes bigint not null check (size_bytes >= 0),
      content_type text not null,
      position smallint not null,
      primary key (task_id, file_id)
    )`);
  }
}

/** The task service's schema, in order: the toolkit's tables, then its own. */
export const taskMigrations: readonly MigrationEntry[] = [
  ...serverSecretMigrations,
  { name: "task-0001-projects", class: CreateProjects },
  { name: "task-0002-attachments", class: CreateTaskAttachments },
];
