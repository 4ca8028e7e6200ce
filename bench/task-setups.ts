import { join } from "node:path";
import { isDeepStrictEqual } from "node:util";
import { openDatabase } from "../kit/db/database.ts";
import { createLogger } from "../kit/log.ts";
import { taskEntities } from "../services/task/entities.ts";
import { taskMigrations } from "../services/task/migrations.ts";
import { seedTasks } from "../services/task/seed.ts";
import { connectPostgres } from "./database.ts";
import { restCall, signUp } from "./rest-calls.ts";
import {
  type BenchProcesses,
  gatewayEnv,
  type Setup,
  type SetupOptions,
  setupLabels,
  startSuite,
} from "./setups.ts";
import { type Answer, fetchOnce } from "./wrk.ts";

// A page of 50 tasks of a project that holds 100,000.
const taskCount = 100_000;
const pageSize = 50;
const tags = ["backend", "review"];
const listTasksPath = "/protomesh.task.v1.TaskService/ListTasks";

/**
 * Starts the user service, the task service on a scratch PostgreSQL database and the gateway,
 * all pinned to one core; signs a user up through the gateway, seeds a project of theirs with
 * 100,000 tasks, and checks that every chosen setup lists the same page of them.
 */
export function startTaskSetups(options: SetupOptions): Promise<BenchProcesses> {
  return startSuite(options, async ({ pinned, atStop }) => {
    const postgres = await connectPostgres(options.databaseUrl);
    // Added first, so it runs last: the databases are dropped once nothing uses them.
    atStop(() => postgres.close());
    const user = await pinned("services/user/main.js", {
      DATABASE_URL: await postgres.createDatabase(),
      DATA_DIR: join(options.dir, "user"),
      // The bench logs in once: its token outlives any run.
      ACCESS_TOKEN_TTL_S: String(24 * 3600),
      // Its account logs in without verifying its email.
      LOGIN_REQUIRE_VERIFIED_EMAIL: "false",
    });
    const taskDatabase = await postgres.createDatabase();
    const task = await pinned("services/task/main.js", {
      DATABASE_URL: taskDatabase,
      DATA_DIR: join(options.dir, "task"),
      USER_SERVICE_URL: user.url,
    });
    const gateway = await pinned("gateway/main.js", {
      USER_SERVICE_URL: user.url,
      TASK_SERVICE_URL: task.url,
      ...gatewayEnv(options),
    });

    const owner = await signUp(gateway.url);
    const authorization = `Bearer ${owner.accessToken}`;
    const project = (await restCall(gateway.url, "/v1/projects", authorization, {
      name: "Bench",
    })) as { id: string };
    await seed(taskDatabase, project.id, owner.id);

    const setups: Setup[] = options.names.map((name) => {
      switch (name) {
        case "tasks-direct":
          return {
            name,
            url: task.url + listTasksPath,
            postBody: JSON.stringify({ projectId: project.id, pageSize }),
            headers: { authorization },
          };
        case "tasks-gateway":
          return {
            name,
            url: `${gateway.url}/v1/projects/${project.id}/tasks?pageSize=${pageSize}`,
            headers: { authorization },
            proxyPid: gateway.pid,
          };
        default:
          throw new Error(`${name} is not a setup of the tasks suite`);
      }
    });
    await checkAnswers(setups, owner.id);
    return {
      setups,
      servicePid: task.pid,
      databasePids: () => postgres.backendPids(taskDatabase),
    };
  });
}

/**
 * Seeds the project's tasks straight into the task service's database (the service has
 * migrated it at start): every task assigned to the owner and carrying both tags.
 */
async function seed(url: string, projectId: string, ownerId: string): Promise<void> {
  const log = createLogger({ name: "bench", level: "warn", format: "json" });
  const db = await openDatabase({
    service: "task",
    url,
    entities: taskEntities,
    migrations: taskMigrations,
    poolMax: 1,
    log,
  });
  try {
    await seedTasks(db, {
      projectId,
      createdBy: ownerId,
      count: taskCount,
      assigneeIds: [ownerId],
      tags,
    });
    // What autovacuum would do soon after so many inserts, done now rather than during a
    // measured phase. It also marks the pages all-visible, as in a database that has been up
    // a while, so that index-only scans need not visit the table.
    await db.fork().execute("vacuum task, task_assignee, task_tag, tag");
  } finally {
    await db.close();
  }
}

interface ListedTask {
  readonly id: string;
  readonly assigneeIds?: string[];
  readonly tags?: string[];
}

/**
 * Fails unless every setup answers with the same page of 50 tasks, each assigned to the owner
 * and carrying both tags: a bench of error answers or empty pages measures nothing.
 */
async function checkAnswers(setups: readonly Setup[], ownerId: string): Promise<void> {
  let firstIds: string[] | undefined;
  for (const setup of setups) {
    const answer = await fetchOnce(setup);
    const listed = (answer.body as { tasks?: ListedTask[] } | null)?.tasks ?? [];
    const ids = listed.map((t) => t.id);
    firstIds ??= ids;
    const problem =
      problemOf(answer, listed, ownerId) ??
      (isDeepStrictEqual(ids, firstIds) ? undefined : "other tasks than the setup before");
    if (problem !== undefined) throw new Error(`${setupLabels[setup.name]} answered ${problem}`);
  }
}

/** What is wrong with one answer to the page request, if anything. */
function problemOf(
  answer: Answer,
  listed: readonly ListedTask[],
  ownerId: string,
): string | undefined {
  if (answer.status !== 200) return `HTTP ${answer.status} ${answer.text}`;
  if (listed.length !== pageSize) return `${listed.length} tasks instead of ${pageSize}`;
  const seeded = (t: ListedTask) =>
    isDeepStrictEqual(t.assigneeIds, [ownerId]) && isDeepStrictEqual(t.tags, tags);
  if (!listed.every(seeded)) {
    return `tasks without the owner as assignee or without the tags ${tags.join(", ")}`;
  }
  return undefined;
}
