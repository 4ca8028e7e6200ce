import { z } from "zod";
import { ConfigError, loadConfig } from "../../kit/config.ts";
import { databaseConfigShape, openDatabase } from "../../kit/db/database.ts";
import { createLogger } from "../../kit/log.ts";
import { userEntities } from "./entities.ts";
import { rotateSigningKey } from "./keys.ts";
import { userMigrations } from "./migrations.ts";

// Rotates the access-token signing key: `npm run user:rotate-keys`, with the same DATABASE_URL
// (or DATA_DIR) as the user service. Running instances sign with the new key within a minute.
let config: z.infer<z.ZodObject<typeof databaseConfigShape>>;
try {
  config = loadConfig(z.object(databaseConfigShape));
} catch (err) {
  if (!(err instanceof ConfigError)) throw err;
  process.stderr.write(`user:rotate-keys: ${err.message}\n`);
  process.exit(2);
}
const log = createLogger({ name: "user:rotate-keys", level: "warn", format: "json" });
const db = await openDatabase({
  service: "user",
  url: config.DATABASE_URL,
  dataDir: config.DATA_DIR,
  entities: userEntities,
  migrations: userMigrations,
  log,
});
try {
  const kid = await rotateSigningKey(db);
  process.stdout.write(
    `new signing key ${kid}; the previous key stays published until the next rotation\n`,
  );
} finally {
  await db.close();
}
