import { describe, expect, it } from "vitest";
import { openTestDatabase, testDatabaseUrl } from "../../test/support/database.ts";
import { createLogger } from "../log.ts";
import { Migration, openDatabase } from "./database.ts";

const log = createLogger({ name: "db-test", level: "silent" });

class CreateNote extends Migration {
  override async up(): Promise<void> {
    this.addSql("create table note (id serial primary key, body text not null)");
  }
}
class AddNoteAuthor extends Migration {
  override async up(): Promise<void> {
    this.addSql("alter table note add column author text not null default 'nobody'");
  }
}
const migrations = [
  { name: "0001-note", class: CreateNote },
  { name: "0002-note-author", class: AddNoteAuthor },
];

describe(`the database layer on ${testDatabaseUrl ? "PostgreSQL" : "PGlite"}`, () => {
  it("applies migrations in order, once, and records them", async () => {
    const db = await openTestDatabase({ log, entities: [], migrations, statementTimeoutMs: 1_500 });
    try {
      await db.fork().execute("insert into note (body) values ('hello')");
      const rows = await db.fork().execute("select body, author from note");
      expect(rows).toEqual([{ body: "hello", author: "nobody" }]);
      const applied = await db.orm.getMigrator().getExecutedMigrations();
      expect(applied.map((m) => m.name)).toEqual(["0001-note", "0002-note-author"]);
      expect(await db.orm.getMigrator().up()).toEqual([]);
    } finally {
      await db.close();
    }
  });

  it.skipIf(!testDatabaseUrl)("bounds every statement with the configured timeout", async () => {
    const db = await openTestDatabase({ log, entities: [], migrations, statementTimeoutMs: 1_500 });
    try {
      const [setting] = await db.fork().execute("show statement_timeout");
      expect(setting).toEqual({ statement_timeout: "1500ms" });
      await expect(db.fork().execute("select pg_sleep(5)")).rejects.toThrow(/statement timeout/);
    } finally {
      await db.close();
    }
  });

  it("fails fast, naming the cause, when the server cannot be reached", async () => {
    const started = performance.now();
    await expect(
      openDatabase({
        service: "test",
        url: "postgres://postgres@127.0.0.1:1/nowhere",
        entities: [],
        migrations,
        connectTimeoutMs: 1_000,
        log,
      }),
    ).rejects.toThrow(/ECONNREFUSED|connect/);
    expect(performance.now() - started).toBeLessThan(10_000);
  });
});

describe("PGlite's one connection", () => {
  const openPglite = () => openDatabase({ service: "test", entities: [], migrations, log });

  it("refuses a second connection asked for inside a transaction, naming the cause", async () => {
    const db = await openPglite();
    try {
      const inside = db.fork().transactional(async (em) => {
        await em.execute("insert into note (body) values ('kept')");
        // A fresh fork is not part of the transaction: on PGlite it would wait for ever.
        await db.fork().execute("select count(*) from note");
      });
      await expect(inside).rejects.toThrow(
        /^PGlite has one connection and this transaction holds it: a query outside the transaction/,
      );
      // The refused transaction rolled back, and the database still answers.
      expect(await db.fork().execute("select body from note")).toEqual([]);
    } finally {
      await db.close();
    }
  });

  it("still lets a query from outside the transaction wait its turn", async () => {
    const db = await openPglite();
    try {
      let release = () => {};
      const held = new Promise<void>((resolve) => {
        release = resolve;
      });
      let began = () => {};
      const begun = new Promise<void>((resolve) => {
        began = resolve;
      });
      const writer = db.fork().transactional(async (em) => {
        await em.execute("insert into note (body) values ('first')");
        began();
        await held;
      });
      await begun;
      const reader = db.fork().execute("select body from note");
      release();
      await writer;
      expect(await reader).toEqual([{ body: "first" }]);
    } finally {
      await db.close();
    }
  });
});
