// `npm run user:rotate-keys` as an operator runs it, against the user service's own data.
import { execFile } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { distEntry } from "./support/process.ts";
import { nodeBinary } from "./support/repo.ts";

const run = promisify(execFile);
const command = distEntry("services/user/rotate-keys.js");

describe("user:rotate-keys", () => {
  it("adds a new signing key each time it runs, naming it", async () => {
    const env = { ...process.env, DATA_DIR: mkdtempSync(join(tmpdir(), "protomesh-rotate-")) };
    const kids = [];
    for (const _ of [1, 2]) {
      const { stdout } = await run(nodeBinary(), [command], { env });
      const kid = /^new signing key (\S+);/.exec(stdout)?.[1];
      expect(kid).toMatch(/^[\w-]{43}$/);
      kids.push(kid);
    }
    expect(new Set(kids).size).toBe(2);
  });

  it("exits 2 naming a bad DATABASE_URL", async () => {
    const env = { ...process.env, DATABASE_URL: "mysql://somewhere/db" };
    const failure = await run(nodeBinary(), [command], { env }).catch((err: unknown) => err);
    expect(failure).toMatchObject({ code: 2 });
    expect((failure as { stderr: string }).stderr).toContain("DATABASE_URL");
  });
});
