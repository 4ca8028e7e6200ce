import { z } from "zod";
import { loadConfigOrExit } from "../../kit/config.ts";
import { databaseConfigShape, openServiceDatabase } from "../../kit/db/database.ts";
import { createLogger } from "../../kit/log.ts";
import { userEntities } from "./entities.ts";
import { rotateSigningKey } from "./keys.ts";
import { userMigrations } from "./migrations.ts";

// Rotates the access-token signing key: `npm run user:rotate-keys`, with the same DATABASE_URL
// (or DATA_DIR) as the user service. Running instances sign with the new key within a minute.
const config = loadConfigOrExit("user:rotate-keys", z.object(databaseConfigShape));
const log = createLogger({ name: "user:rotate-keys", level: "warn", format: "json" });
const db = await openServiceDatabase("user", config, {
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
