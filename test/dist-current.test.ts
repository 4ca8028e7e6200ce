// The processes the end-to-end tests start run dist/: it must be compiled from the checkout as it
// is now, whatever was edited since the last `npm run build`.
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { repoRoot } from "./support/repo.ts";

const compiledFolders = ["gen", "kit", "services", "gateway", "bench", "test"];

function sources(folder: string): string[] {
  return readdirSync(join(repoRoot, folder), { recursive: true, encoding: "utf8" })
    .filter((name) => name.endsWith(".ts") && !name.endsWith(".test.ts") && !name.endsWith(".d.ts"))
    .map((name) => join(folder, name));
}

describe("the end-to-end tests' compiled code", () => {
  it("is compiled from every source as it is now, none older than its source", () => {
    const stale = compiledFolders.flatMap(sources).filter((source) => {
      const compiled = join(repoRoot, "dist", source.replace(/\.ts$/, ".js"));
      const modified = (path: string) => statSync(path, { throwIfNoEntry: false })?.mtimeMs ?? 0;
      return modified(compiled) < modified(join(repoRoot, source));
    });
    expect(stale).toEqual([]);
  });
});
