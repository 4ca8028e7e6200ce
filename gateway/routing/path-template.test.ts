import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { createPathTemplate } from "./path-template.ts";

describe("path template parser", () => {
  it.each([
    ["/v1/users/{id}", "/v1/users/*", [["id", 2, 3]], undefined],
    ["/v1/users/me", "/v1/users/me", [], undefined],
    ["/.well-known/jwks.json", "/.well-known/jwks.json", [], undefined],
    ["/v1/users/{id}:setRole", "/v1/users/*:setRole", [["id", 2, 3]], "setRole"],
    ["/v1/{name=shelves/*/books/*}", "/v1/shelves/*/books/*", [["name", 1, 5]], undefined],
    ["/v1/objects/{path=**}:restore", "/v1/objects/**:restore", [["path", 2, 3]], "restore"],
    ["/v1/{a.b_c.d}/x", "/v1/*/x", [["a.b_c.d", 1, 2]], undefined],
    ["/v1/any/*/items/**", "/v1/any/*/items/**", [], undefined],
    [
      "/v1/{id=*}/{n=x}",
      "/v1/*/x",
      [
        ["id", 1, 2],
        ["n", 2, 3],
      ],
      undefined,
    ],
  ] as const)("parses %s", (source, shape, variables, verb) => {
    const template = createPathTemplate(source);
    expect(template.shape).toBe(shape);
    expect(template.verb).toBe(verb);
    expect(template.variables.map((v) => [v.fieldPath, v.start, v.end])).toEqual(variables);
  });

  it.each([
    ["", 'must start with "/" at the end'],
    ["v1/users", 'must start with "/" at position 0'],
    ["/", "expected a segment at the end"],
    ["/v1/", "expected a segment at the end"],
    ["/v1//x", "expected a segment at position 4"],
    ["/v1/{id", 'expected "}" at the end'],
    ["/v1/{}", "expected a field name at position 5"],
    ["/v1/{1d}", "expected a field name at position 5"],
    ["/v1/{a.}", "expected a field name at position 7"],
    ["/v1/{id=}", "expected a segment at position 8"],
    ["/v1/{a={b}}", "variables cannot be nested at position 7"],
    ["/v1/**/x", '"**" must be the last segment'],
    ["/v1/***", 'unexpected "*" at position 6'],
    ["/v1/{id}/{id}", 'field "id" is bound twice'],
    ["/v1/x:", 'expected a verb after ":" at the end'],
    ["/v1/x:a:b", 'unexpected ":" at position 7'],
    ["/v1/a b", 'unexpected " " at position 5'],
    ["/v1/a%20b", 'unexpected "%" at position 5'],
    ["/v1/{id}}", 'unexpected "}" at position 8'],
  ])("rejects %j: %s", (source, problem) => {
    expect(() => createPathTemplate(source)).toThrow(
      `invalid path template "${source}": ${problem}`,
    );
  });
});

describe("path template matcher", () => {
  it.each<[string, string, Record<string, string> | undefined]>([
    ["/v1/users/{id}", "/v1/users/abc", { id: "abc" }],
    // Single-segment variables are fully decoded: %2F is a slash inside the id.
    ["/v1/users/{id}", "/v1/users/a%2Fb%20c", { id: "a/b c" }],
    // Without a verb in the template, a colon belongs to the id.
    ["/v1/users/{id}", "/v1/users/a:b", { id: "a:b" }],
    ["/v1/users/{id}", "/v1/users/abc/x", undefined],
    ["/v1/users/{id}", "/v1/users/", undefined],
    ["/v1/users/{id}", "/v1/users", undefined],
    ["/v1/users/{id}", "v1/users/abc", undefined],
    ["/v1/users/me", "/v1/users/m%65", {}],
    ["/v1/users/me", "/v1/users/you", undefined],
    ["/v1/users/{id}:setRole", "/v1/users/abc:setRole", { id: "abc" }],
    // The verb follows the last colon of the last segment.
    ["/v1/users/{id}:setRole", "/v1/users/a:b:setRole", { id: "a:b" }],
    ["/v1/users/{id}:setRole", "/v1/users/abc", undefined],
    ["/v1/users/{id}:setRole", "/v1/users/abc:other", undefined],
    ["/v1/users/{id}:setRole", "/v1/users/:setRole", undefined],
    // An encoded colon is not a verb separator.
    ["/v1/users/{id}:setRole", "/v1/users/abc%3AsetRole", undefined],
    ["/v1/projects/{project_id}/tasks", "/v1/projects/p1/tasks:export", undefined],
    [
      "/v1/projects/{project_id}/tasks:export",
      "/v1/projects/p1/tasks:export",
      { project_id: "p1" },
    ],
    // Multi-segment variables keep %2F encoded so it never reads as a separator.
    [
      "/v1/{name=shelves/*/books/*}",
      "/v1/shelves/s1/books/b%2F1",
      { name: "shelves/s1/books/b%2F1" },
    ],
    [
      "/v1/{name=shelves/*/books/*}",
      "/v1/shelves/s%201/books/b1",
      { name: "shelves/s 1/books/b1" },
    ],
    ["/v1/{name=shelves/*/books/*}", "/v1/shelves/s1/boks/b1", undefined],
    ["/v1/objects/{path=**}", "/v1/objects/a/b/c", { path: "a/b/c" }],
    ["/v1/objects/{path=**}", "/v1/objects/a%2Fb/c%20d", { path: "a%2Fb/c d" }],
    ["/v1/objects/{path=**}", "/v1/objects/a%2fb", { path: "a%2fb" }],
    ["/v1/objects/{path=**}", "/v1/objects", { path: "" }],
    ["/v1/objects/{path=**}", "/v2/objects/a", undefined],
    ["/v1/objects/{path=**}:restore", "/v1/objects/a/b:restore", { path: "a/b" }],
    ["/v1/objects/{path=**}:restore", "/v1/objects/a/b", undefined],
    ["/v1/any/*/items/**", "/v1/any/x/items/1/2", {}],
    ["/v1/any/*/items/**", "/v1/any/x/y/items", undefined],
    ["/.well-known/jwks.json", "/.well-known/jwks.json", {}],
    ["/v1/{a.b}/{c}", "/v1/x/y", { "a.b": "x", c: "y" }],
  ])("%s matches %s as %j", (source, path, expected) => {
    const bindings = createPathTemplate(source).match(path);
    expect(bindings === undefined ? undefined : Object.fromEntries(bindings)).toEqual(expected);
  });

  it("rejects a malformed percent-encoding with InvalidArgument", () => {
    const template = createPathTemplate("/v1/users/{id}");
    let error: unknown;
    try {
      template.match("/v1/users/%zz");
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConnectError);
    expect((error as ConnectError).code).toBe(Code.InvalidArgument);
    expect((error as ConnectError).rawMessage).toMatch(/percent-encoding in path segment "%zz"/);
  });
});
