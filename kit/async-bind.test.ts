import { execFileSync } from "node:child_process";
import { pathToFileURL } from "node:url";
import { describe, expect, it } from "vitest";
import { distEntry } from "../test/support/process.ts";
import { nodeBinary } from "../test/support/repo.ts";

// Run in a process of its own: the change is to a class of Node.js itself, and measuring what
// survives a young-generation collection needs --expose-gc.
const probe = `
import v8 from "node:v8";
import { AsyncLocalStorage, AsyncResource } from "node:async_hooks";
const { useLeanAsyncBind } = await import(${JSON.stringify(
  pathToFileURL(distEntry("kit/async-bind.js")).href,
)});
useLeanAsyncBind();
const storage = new AsyncLocalStorage();
const resource = storage.run("where it was made", () => new AsyncResource("probe"));
const target = { name: "target" };
function whoAndWhere(a, b) { return [this?.name, storage.getStore()]; }
const bound = resource.bind(whoAndWhere);
const staticBound = storage.run("where it was bound", () => AsyncResource.bind(whoAndWhere));
let error;
try { resource.bind("not a function"); } catch (err) { error = { type: err.constructor.name, code: err.code }; }
const newSpace = () => v8.getHeapSpaceStatistics().find((s) => s.space_name === "new_space").space_used_size;
gc({ type: "minor" }); gc({ type: "minor" });
const before = newSpace();
const count = 5000;
for (let i = 0; i < count; i++) {
  const payload = new Array(100).fill(i + 0.5);
  resource.bind(() => payload);
}
gc({ type: "minor" });
console.log(JSON.stringify({
  called: storage.run("where it was called", () => bound.call(target, 1, 2)),
  withThisArg: storage.run("where it was called", () => resource.bind(whoAndWhere, target)()),
  staticBound: staticBound.call(target),
  length: bound.length,
  hasAccessor: "asyncResource" in bound,
  error,
  survivedPerBind: Math.max(0, newSpace() - before) / count,
}));
`;

describe("useLeanAsyncBind", () => {
  const result = JSON.parse(
    execFileSync(nodeBinary(), ["--expose-gc", "--input-type=module", "-e", probe], {
      encoding: "utf8",
    }),
  ) as Record<string, unknown>;

  it("runs a bound function in the resource's async context, with its this and length", () => {
    expect(result.called).toEqual(["target", "where it was made"]);
    expect(result.withThisArg).toEqual(["target", "where it was made"]);
    expect(result.staticBound).toEqual(["target", "where it was bound"]);
    expect(result.length).toBe(2);
    expect(result.error).toEqual({ type: "TypeError", code: "ERR_INVALID_ARG_TYPE" });
  });

  it("leaves nothing of a dropped bound function alive after a young-generation collection", () => {
    // Node.js's own bind defines the deprecated accessor, and keeps about 1.9 KB per call here.
    expect(result.hasAccessor).toBe(false);
    expect(result.survivedPerBind).toBeLessThan(50);
  });
});
