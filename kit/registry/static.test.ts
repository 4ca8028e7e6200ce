import { describe, expect, it } from "vitest";
import { createStaticRegistry } from "./static.ts";

const users = "protomesh.user.v1.UserService";
const tasks = "protomesh.task.v1.TaskService";

describe("static registry", () => {
  it("gives each configured URL as an instance, comma-separated or listed, sorted by id", () => {
    const registry = createStaticRegistry({
      [users]: "http://127.0.0.1:50061/, http://127.0.0.1:50051",
      [tasks]: ["http://task:50052"],
    });
    expect(registry.current(users)).toEqual([
      {
        id: `${users}@http://127.0.0.1:50051`,
        service: users,
        address: "http://127.0.0.1:50051",
        meta: {},
      },
      {
        id: `${users}@http://127.0.0.1:50061`,
        service: users,
        address: "http://127.0.0.1:50061",
        meta: {},
      },
    ]);
    expect(registry.current(tasks).map((i) => i.address)).toEqual(["http://task:50052"]);
  });

  it("delivers the whole set before watch returns, and none for a service it does not name", () => {
    const registry = createStaticRegistry({ [users]: "http://127.0.0.1:50051" });
    const seen: string[][] = [];
    const watcher = registry.watch(users, (set) => seen.push(set.map((i) => i.address)));
    registry.watch(tasks, (set) => seen.push(set.map((i) => i.address))).close();
    expect(seen).toEqual([["http://127.0.0.1:50051"], []]);
    watcher.close();
    registry.close();
  });

  it("registers and deregisters nothing: there is no one to tell", async () => {
    const registry = createStaticRegistry({});
    await registry.register({ services: [users], host: "127.0.0.1", port: 50051 });
    expect(registry.current(users)).toEqual([]);
    await expect(registry.deregister()).resolves.toBeUndefined();
  });

  it("refuses a value that is not an http(s) base URL, naming the service", () => {
    expect(() => createStaticRegistry({ [users]: "127.0.0.1:50051" })).toThrow(
      `${users}: "127.0.0.1:50051" is not an http(s):// base URL`,
    );
    expect(() => createStaticRegistry({ [users]: "http://" })).toThrow(`${users}: "http://"`);
  });
});
