import type { Database } from "../../kit/db/database.ts";

/** What to seed: how many tasks, in which project, by whom, and what to link them to. */
export interface SeedOptions {
  readonly projectId: string;
  /** The member recorded as the tasks' creator. */
  readonly createdBy: string;
  readonly count: number;
  /** Members to assign, round robin: task n gets assignee n mod length (none when empty). */
  readonly assigneeIds?: readonly string[];
  /** Tags of the project to put on every task, created when missing. */
  readonly tags?: readonly string[];
  /** Creation time of the first task; each next one is a millisecond later. */
  readonly start?: Date;
}

/**
 * Seeds tasks straight into the task service's database, set-based (a few INSERT … SELECT
 * over generate_series, whatever the count), for tests and benchmarks: 100,000 tasks take
 * seconds instead of 100,000 CreateTask calls. Statuses and priorities cycle, two tasks in
 * three have a due date an hour apart, and no activity is recorded.
 */
export async function seedTasks(db: Database, options: SeedOptions): Promise<void> {
  const { projectId, createdBy, count } = options;
  const start = options.start ?? new Date();
  const assignees = options.assigneeIds ?? [];
  const tags = options.tags ?? [];
  await db.fork().transactional(async (em) => {
    // seed_no numbers this batch's tasks, so the links below find them without a scan.
    await em.execute("create temporary table seeded (id uuid, seed_no int) on commit drop");
    await em.execute(
      `with made as (
         insert into task (id, project_id, title, description, status, priority, due_at,
           completed_at, comment_count, created_by, updated_by, created_at, updated_at, version)
         select gen_random_uuid(), ?, 'Task ' || n, 'Seeded task number ' || n,
           (array['todo', 'in_progress', 'done', 'cancelled'])[1 + n % 4], 1 + n % 4,
           case when n % 3 = 0 then null else ?::timestamptz + n * interval '1 hour' end,
           case when n % 4 = 2 then ?::timestamptz + n * interval '1 millisecond' end,
           0, ?, ?, ?::timestamptz + n * interval '1 millisecond',
           ?::timestamptz + n * interval '1 millisecond', 1
         from generate_series(1, ?) as n
         returning id, created_at)
       insert into seeded
       select id, row_number() over (order by created_at) from made`,
      [projectId, start, start, createdBy, createdBy, start, start, count],
    );
    if (assignees.length > 0) {
      await em.execute(
        `insert into task_assignee (task_id, user_id, project_id, position)
         select s.id, (?::uuid[])[1 + s.seed_no % ?], ?, 0 from seeded s`,
        [`{${assignees.join(",")}}`, assignees.length, projectId],
      );
    }
    for (const [position, name] of tags.entries()) {
      await em.execute(
        `insert into tag (id, project_id, name) values (gen_random_uuid(), ?, ?)
         on conflict (project_id, name) do nothing`,
        [projectId, name],
      );
      await em.execute(
        `insert into task_tag (task_id, tag_id, position)
         select s.id, t.id, ? from seeded s join tag t on t.project_id = ? and t.name = ?`,
        [position, projectId, name],
      );
    }
  });
  // Fresh statistics, as autovacuum would gather later: the planner then knows the project is
  // large and pages it through the indexes.
  await db.fork().execute("analyze task, task_assignee, task_tag");
}
