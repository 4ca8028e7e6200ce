import { mkdirSync } from "node:fs";
import { PGlite } from "@electric-sql/pglite";
import { vector } from "@electric-sql/pglite/vector";
import { type MigrationObject, MikroORM, type Options, TransactionContext } from "@mikro-orm/core";
import { Migration, Migrator } from "@mikro-orm/migrations";
import {
  type EntitySchema,
  type Knex,
  PostgreSqlDriver,
  type SqlEntityManager,
} from "@mikro-orm/postgresql";
import { PGliteDriver } from "mikro-orm-pglite";
import { z } from "zod";
import { millisSchema } from "../config.ts";
import type { Log } from "../log.ts";

export { Migration };

/** A named schema change, applied once, in list order, at start-up. */
export type MigrationEntry = Readonly<MigrationObject>;

/** Database settings every service with persistence reads from the environment. */
export const databaseConfigShape = {
  /** PostgreSQL connection URL; when unset, an embedded PGlite database under DATA_DIR. */
  DATABASE_URL: z.url({ protocol: /^postgres(ql)?$/ }).optional(),
  DATA_DIR: z.string().default(".data"),
  DB_POOL_MAX: z.coerce.number().int().positive().default(10),
  DB_CONNECT_TIMEOUT_MS: millisSchema.default(5_000),
  DB_STATEMENT_TIMEOUT_MS: millisSchema.default(15_000),
};

/** The database settings of a process, as databaseConfigShape reads them. */
export type DatabaseConfig = Readonly<z.infer<z.ZodObject<typeof databaseConfigShape>>>;

/** Opens a service's own database as its configuration (databaseConfigShape) says. */
export function openServiceDatabase(
  service: string,
  config: DatabaseConfig,
  schema: Pick<DatabaseOptions, "entities" | "migrations" | "log">,
): Promise<Database> {
  return openDatabase({
    ...schema,
    service,
    url: config.DATABASE_URL,
    dataDir: config.DATA_DIR,
    poolMax: config.DB_POOL_MAX,
    connectTimeoutMs: config.DB_CONNECT_TIMEOUT_MS,
    statementTimeoutMs: config.DB_STATEMENT_TIMEOUT_MS,
  });
}

/** How to open a service's database. */
export interface DatabaseOptions {
  /** The service that owns the database; names its PGlite directory. */
  readonly service: string;
  /** PostgreSQL URL; when absent, PGlite in `<dataDir>/<service>/db`, or in memory. */
  readonly url?: string | undefined;
  /** Where embedded databases live; `undefined` keeps PGlite in memory (tests). */
  readonly dataDir?: string | undefined;
  readonly entities: readonly EntitySchema[];
  readonly migrations: readonly MigrationEntry[];
  readonly poolMax?: number;
  readonly connectTimeoutMs?: number;
  readonly statementTimeoutMs?: number;
  readonly log: Log;
}

/** An open database: the ORM, a way to get a fresh unit of work, and shutdown. */
export interface Database {
  readonly orm: MikroORM<PostgreSqlDriver>;
  /** Which engine is behind it: the real server, or embedded PGlite. */
  readonly kind: "postgresql" | "pglite";
  /** A fresh EntityManager with its own identity map, one per RPC or job. */
  fork(): SqlEntityManager;
  close(): Promise<void>;
}

/**
 * Opens a service's database (PostgreSQL when a URL is given, PGlite otherwise) and applies
 * its migrations. Pool, connect and statement timeouts are always bounded.
 */
export async function openDatabase(options: DatabaseOptions): Promise<Database> {
  const { log } = options;
  const common: Options = {
    entities: [...options.entities],
    extensions: [Migrator],
    migrations: {
      migrationsList: options.migrations.map((m) => ({ name: m.name, class: m.class })),
      transactional: true,
      allOrNothing: true,
      snapshot: false,
      silent: true,
    },
    allowGlobalContext: false,
    // Entities are defined with defineEntity, so there is nothing to discover from files.
    discovery: { warnWhenNoEntities: false },
    logger: (message) => log.debug({ orm: message }, "orm"),
  };
  let pglite: PGlite | undefined;
  let config: Options;
  if (options.url) {
    config = {
      ...common,
      driver: PostgreSqlDriver,
      clientUrl: options.url,
      pool: {
        min: 0,
        max: options.poolMax ?? 10,
        acquireTimeoutMillis: options.connectTimeoutMs ?? 5_000,
      },
      driverOptions: {
        connection: {
          connectionTimeoutMillis: options.connectTimeoutMs ?? 5_000,
          statement_timeout: options.statementTimeoutMs ?? 15_000,
          // A transaction left open by a crashed request must not hold locks forever.
          idle_in_transaction_session_timeout: 60_000,
        },
      },
    };
  } else {
    let dir: string | undefined;
    if (options.dataDir !== undefined) {
      dir = `${options.dataDir}/${options.service}/db`;
      mkdirSync(dir, { recursive: true });
    }
    const embedded = new PGlite(dir, { extensions: { vector } });
    pglite = embedded;
    config = {
      ...common,
      driver: PGliteDriver,
      dbName: "postgres",
      driverOptions: { connection: { pglite: () => embedded } },
    };
  }
  // Both drivers are PostgreSQL's SQL driver (PGlite's over an in-process connection), so the
  // ORM is typed as PostgreSQL's whichever one runs.
  const orm = (await MikroORM.init(config)) as unknown as MikroORM<PostgreSqlDriver>;
  if (pglite) refuseSecondConnection(orm);
  try {
    const applied = await orm.getMigrator().up();
    if (applied.length > 0) log.info({ migrations: applied.map((m) => m.name) }, "migrated");
  } catch (err) {
    await orm.close();
    await pglite?.close();
    throw err;
  }
  return {
    orm,
    kind: pglite ? "pglite" : "postgresql",
    fork: () => orm.em.fork() as SqlEntityManager,
    async close() {
      await orm.close();
      await pglite?.close();
    },
  };
}

// Why PGlite refuses a connection asked for inside an open transaction.
const secondConnectionMessage =
  "PGlite has one connection and this transaction holds it: a query outside the transaction " +
  "would wait for it forever; run it on the transaction's EntityManager, or before or after it";

/**
 * Makes a request for a connection from inside an open transaction fail at once on PGlite.
 * Its pool has one connection, so the request would queue behind the transaction that is
 * awaiting it: a deadlock that only the pool's acquire timeout (a minute) ends, while every
 * other query of the process queues behind both. Requests from outside the transaction still
 * wait their turn as usual.
 */
function refuseSecondConnection(orm: MikroORM<PostgreSqlDriver>): void {
  const client = orm.em.getConnection().getKnex().client as {
    acquireConnection(): Promise<unknown>;
  };
  const acquire = client.acquireConnection.bind(client);
  const contextName = orm.config.get("contextName");
  client.acquireConnection = () => {
    // MikroORM runs a transactional() callback, and everything it starts, in this context.
    const open = TransactionContext.getEntityManager(contextName)
      ?.getTransactionContext<Knex.Transaction>()
      ?.isCompleted();
    return open === false ? Promise.reject(new Error(secondConnectionMessage)) : acquire();
  };
}
