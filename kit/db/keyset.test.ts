import { randomBytes } from "node:crypto";
import { defineEntity, type InferEntity, p } from "@mikro-orm/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openTestDatabase, type TestDatabase } from "../../test/support/database.ts";
import { createLogger } from "../log.ts";
import { createPageTokens } from "../page-token.ts";
import { Migration } from "./database.ts";
import { createKeyset, findPage, type KeysetSort, scanInBatches } from "./keyset.ts";

const Item = defineEntity({
  name: "Item",
  tableName: "item",
  properties: {
    id: p.text().primary(),
    rank: p.integer().nullable(),
    at: p.datetime(),
  },
});
type ItemRow = InferEntity<typeof Item>;

class CreateItems extends Migration {
  override async up(): Promise<void> {
    this.addSql("create table item (id text primary key, rank integer, at timestamptz not null)");
  }
}

let db: TestDatabase;
// Ties on every key, and a third of the ranks missing.
const items: ItemRow[] = Array.from({ length: 40 }, (_, i) => ({
  id: `item-${String((i * 17) % 40).padStart(2, "0")}`,
  rank: i % 3 === 0 ? null : i % 5,
  at: new Date(Date.UTC(2030, 0, 1, 0, 0, i % 7)),
}));
const tokens = createPageTokens(randomBytes(32));

beforeAll(async () => {
  db = await openTestDatabase({
    entities: [Item],
    migrations: [{ name: "keyset-test-0001", class: CreateItems }],
    log: createLogger({ name: "keyset-test", level: "silent", format: "json" }),
  });
  const em = db.fork();
  for (const item of items) em.create(Item, item);
  await em.flush();
});
afterAll(async () => {
  await db?.close();
});

/** The order a sort promises, computed in memory: nulls last, ties by id in the same direction. */
function sorted(sort: KeysetSort<ItemRow>): string[] {
  const sign = sort.direction === "asc" ? 1 : -1;
  const value = (item: ItemRow) => {
    const v = item[sort.key];
    return v instanceof Date ? v.getTime() : v;
  };
  return [...items]
    .sort((a, b) => {
      const [x, y] = [value(a), value(b)];
      if (x === null || y === null) {
        if (x !== y) return x === null ? 1 : -1;
      } else if (x !== y) return sign * (Number(x) - Number(y));
      return sign * a.id.localeCompare(b.id);
    })
    .map((item) => item.id);
}

const sorts: KeysetSort<ItemRow>[] = (["asc", "desc"] as const).flatMap((direction) => [
  { key: "at", kind: "date", direction, tieBreaker: "id" },
  { key: "rank", kind: "number", direction, nullable: true, tieBreaker: "id" },
]);

describe("keyset pagination", () => {
  it.each(sorts)("pages through every row once, in order: %o", async (sort) => {
    const keyset = createKeyset(sort);
    const seen: string[] = [];
    let pageToken = "";
    do {
      const page = await findPage(
        db.fork(),
        Item,
        {},
        { pageSize: 6, pageToken },
        {
          keyset,
          tokens,
          scope: "items",
        },
      );
      expect(page.rows.length).toBeLessThanOrEqual(6);
      seen.push(...page.rows.map((r) => r.id));
      pageToken = page.nextPageToken;
    } while (pageToken !== "");
    expect(seen).toEqual(sorted(sort));

    const scanned: string[] = [];
    for await (const batch of scanInBatches(db.fork(), Item, {}, keyset, { batchSize: 7 })) {
      scanned.push(...batch.map((r) => r.id));
    }
    expect(scanned).toEqual(sorted(sort));
  });

  it("refuses a token of another list", async () => {
    const keyset = createKeyset(sorts[0] as KeysetSort<ItemRow>);
    const first = await findPage(
      db.fork(),
      Item,
      {},
      { pageSize: 5, pageToken: "" },
      {
        keyset,
        tokens,
        scope: "items",
      },
    );
    await expect(
      findPage(
        db.fork(),
        Item,
        {},
        { pageSize: 5, pageToken: first.nextPageToken },
        {
          keyset,
          tokens,
          scope: "other items",
        },
      ),
    ).rejects.toThrow(/invalid page_token/);
  });
});
