import { Migration, type MigrationEntry } from "../../kit/db/database.ts";
import { jobMigrations } from "../../kit/jobs/migrations.ts";

class CreateEffectTable extends Migration {
  override async up(): Promise<void> {
    // No unique key on purpose: an effect that happened twice must show up as a second row.
    this.addSql(
      "create table if not exists effect (event_id uuid not null, consumer text not null)",
    );
  }
}

/**
 * The migrations of the job-consumer test double's database. The test applies them once
 * before starting consumers, which then find nothing pending: consumer processes starting
 * together must not race to migrate. Shared so that both sides list the same names.
 */
export const effectMigrations: readonly MigrationEntry[] = [
  ...jobMigrations,
  { name: "test-0001-effect", class: CreateEffectTable },
];
