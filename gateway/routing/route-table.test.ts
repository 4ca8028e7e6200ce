import type { DescService, MessageInitShape } from "@bufbuild/protobuf";
import { create, createFileRegistry, hasOption, setExtension } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema, MethodOptionsSchema } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import { http } from "../../gen/google/api/annotations_pb.ts";
import { HttpRuleSchema } from "../../gen/google/api/http_pb.ts";
import { FileService } from "../../gen/protomesh/file/v1/file_pb.ts";
import { InferenceService } from "../../gen/protomesh/inference/v1/inference_pb.ts";
import { DownloadPolicySchema, download } from "../../gen/protomesh/options/v1/options_pb.ts";
import { TaskService } from "../../gen/protomesh/task/v1/task_pb.ts";
import { UserService } from "../../gen/protomesh/user/v1/user_pb.ts";
import {
  ConflictService,
  file_protomesh_gatewaytest_v1_gatewaytest,
  LibraryService,
} from "../testdata/gen/protomesh/gatewaytest/v1/gatewaytest_pb.ts";
import type { RouteMatch } from "./route-table.ts";
import { createRouteTable } from "./route-table.ts";

/** An HttpRule written as in a .proto file: the pattern as a plain key. */
interface RuleInit {
  get?: string;
  put?: string;
  post?: string;
  delete?: string;
  patch?: string;
  custom?: { kind: string; path: string };
  body?: string;
  responseBody?: string;
  additionalBindings?: RuleInit[];
}

function toHttpRule(rule: RuleInit): MessageInitShape<typeof HttpRuleSchema> {
  const { custom, body = "", responseBody = "", additionalBindings = [], ...verbs } = rule;
  const [verb, path] = Object.entries(verbs)[0] ?? [];
  const pattern =
    custom !== undefined
      ? { case: "custom" as const, value: custom }
      : verb !== undefined && path !== undefined
        ? { case: verb as "get", value: path }
        : { case: undefined };
  return { pattern, body, responseBody, additionalBindings: additionalBindings.map(toHttpRule) };
}

/**
 * A one-file service whose methods carry the given rules, with request and response messages
 * of the test contract, for rules that the test contract cannot hold (invalid ones).
 */
function syntheticService(
  methods: readonly {
    name: string;
    rule: RuleInit;
    input?: string;
    output?: string;
    streaming?: "client" | "server" | "bidi";
    download?: { offsetField: string; lengthField: string };
  }[],
): DescService {
  const file = create(FileDescriptorProtoSchema, {
    name: "synthetic.proto",
    package: "protomesh.gatewaytest.v1.synthetic",
    syntax: "proto3",
    dependency: [file_protomesh_gatewaytest_v1_gatewaytest.proto.name],
    service: [
      {
        name: "SyntheticService",
        method: methods.map((method) => {
          const { name, rule, input = "Book", output = ".protomesh.gatewaytest.v1.Book" } = method;
          const { streaming } = method;
          const options = create(MethodOptionsSchema);
          setExtension(options, http, create(HttpRuleSchema, toHttpRule(rule)));
          if (method.download !== undefined) {
            setExtension(options, download, create(DownloadPolicySchema, method.download));
          }
          return {
            name,
            inputType: `.protomesh.gatewaytest.v1.${input}`,
            outputType: output,
            clientStreaming: streaming === "client" || streaming === "bidi",
            serverStreaming: streaming === "server" || streaming === "bidi",
            options,
          };
        }),
      },
    ],
  });
  const registry = createFileRegistry(file, (name) =>
    name === file_protomesh_gatewaytest_v1_gatewaytest.proto.name
      ? file_protomesh_gatewaytest_v1_gatewaytest
      : undefined,
  );
  const service = registry.getService("protomesh.gatewaytest.v1.synthetic.SyntheticService");
  if (service === undefined) throw new Error("synthetic service not registered");
  return service;
}

/** A route match in a form that reads well in a table: "found Service.Method {bindings}". */
function summarize(match: RouteMatch): unknown {
  switch (match.kind) {
    case "found":
      return [
        `${match.route.method.parent.name}.${match.route.method.name}`,
        Object.fromEntries(match.bindings),
      ];
    case "not-found":
      return "not-found";
    case "method-not-allowed":
      return `method-not-allowed: ${match.allow.join(", ")}`;
  }
}

describe("route table of the test contract", () => {
  const table = createRouteTable([LibraryService]);

  it("has one route per rule and additional binding", () => {
    expect(table.routes).toHaveLength(LibraryService.methods.length + 2);
    const update = table.routes.filter((r) => r.method.name === "UpdateBook");
    expect(update.map((r) => [r.httpMethod, r.template.source, r.body])).toEqual([
      ["PUT", "/v1/shelves/{book.shelf_id}/books/{book.name}", "book"],
      ["PATCH", "/v1/books/{book.name}", "book"],
    ]);
    const create = table.routes.find((r) => r.method.name === "CreateBook");
    expect([create?.bodyField?.name, create?.responseBody]).toEqual(["book", "title"]);
  });

  it.each<[string, string, unknown]>([
    ["GET", "/v1/shelves/s1", ["LibraryService.GetShelf", { shelf_id: "s1" }]],
    // A literal segment wins over a variable.
    ["GET", "/v1/shelves/default", ["LibraryService.GetDefaultShelf", {}]],
    ["GET", "/v1/shelves/s1/books/b1", ["LibraryService.GetBook", { name: "shelves/s1/books/b1" }]],
    // The additional binding of GetBook.
    ["GET", "/v1/books/b1", ["LibraryService.GetBook", { name: "b1" }]],
    // A verb-specific template wins over a verb-less one.
    ["GET", "/v1/books/b1:preview", ["LibraryService.PreviewBook", { name: "b1" }]],
    ["GET", "/v1/books/b1:other", ["LibraryService.GetBook", { name: "b1:other" }]],
    ["GET", "/v1/books/b1/author", ["LibraryService.GetBookAuthor", { name: "b1" }]],
    [
      "POST",
      "/v1/shelves/s1/books/b1:move",
      ["LibraryService.MoveBook", { "target.shelf_id": "s1", "book.name": "b1" }],
    ],
    ["POST", "/v1/shelves/s1/books", ["LibraryService.CreateBook", { shelf_id: "s1" }]],
    ["PATCH", "/v1/books/b1", ["LibraryService.UpdateBook", { "book.name": "b1" }]],
    [
      "PUT",
      "/v1/shelves/s1/books/b1",
      ["LibraryService.UpdateBook", { "book.shelf_id": "s1", "book.name": "b1" }],
    ],
    ["POST", "/v1/books/b1:archive", ["LibraryService.ArchiveBook", { name: "b1" }]],
    ["GET", "/v1/objects/a/b%2Fc", ["LibraryService.GetObject", { path: "a/b%2Fc" }]],
    ["POST", "/v1/objects/a/b:restore", ["LibraryService.RestoreObject", { path: "a/b" }]],
    ["GET", "/v1/any/x/items/y/z", ["LibraryService.ListAnyItems", {}]],
    ["GET", "/v1/books", ["LibraryService.SearchBooks", {}]],
    ["PURGE", "/v1/cache/k1", ["LibraryService.PurgeCache", { key: "k1" }]],
    ["GET", "/v1/echo/hi", ["LibraryService.Echo", { text: "hi" }]],
    ["OPTIONS", "/v1/echo/hi", ["LibraryService.Echo", { text: "hi" }]],
    ["DELETE", "/v1/books/b1", ["LibraryService.DeleteBook", { name: "b1" }]],
    ["POST", "/v1/books/b1", "method-not-allowed: DELETE, GET, HEAD, PATCH"],
    ["POST", "/v1/books/b1:unknown", "method-not-allowed: DELETE, GET, HEAD, PATCH"],
    ["GET", "/v1/cache/k1", "method-not-allowed: PURGE"],
    ["GET", "/v1/books/b1:archive", ["LibraryService.GetBook", { name: "b1:archive" }]],
    // HTTP methods are case-sensitive (RFC 9110, section 9.1).
    ["get", "/v1/books/b1", "method-not-allowed: DELETE, GET, HEAD, PATCH"],
    ["GET", "/v1/shelves", "not-found"],
    ["GET", "/v2/books", "not-found"],
    ["GET", "/v1/books/", "not-found"],
  ])("%s %s", (httpMethod, path, expected) => {
    expect(summarize(table.match(httpMethod, path))).toEqual(expected);
  });

  it("refuses two methods with equivalent templates, naming both RPCs", () => {
    expect(() => createRouteTable([ConflictService])).toThrow(
      "ambiguous HTTP routes: GET /v1/conflict/{shelf_id} " +
        "(protomesh.gatewaytest.v1.ConflictService.GetById) and GET /v1/conflict/{name} " +
        "(protomesh.gatewaytest.v1.ConflictService.GetByName) match the same requests",
    );
  });
});

describe("route precedence", () => {
  it.each<[string, RuleInit[], string, string]>([
    ["literal over variable", [{ get: "/v1/{name}" }, { get: "/v1/me" }], "/v1/me", "/v1/me"],
    ["no ** over **", [{ get: "/v1/{name=**}" }, { get: "/v1/{name}" }], "/v1/x", "/v1/{name}"],
    [
      "** at any depth, past the routes kept per segment count",
      [{ get: "/v1/{name=**}" }, { get: "/v1/{name}" }],
      `/v1/${Array.from({ length: 40 }, (_, i) => `s${i}`).join("/")}`,
      "/v1/{name=**}",
    ],
    [
      "fewer wildcards",
      [{ get: "/v1/{name=**}" }, { get: "/v1/{name}/{title}" }],
      "/v1/a/b",
      "/v1/{name}/{title}",
    ],
    [
      "verb over no verb",
      [{ get: "/v1/{name}" }, { get: "/v1/{name}:x" }],
      "/v1/a:x",
      "/v1/{name}:x",
    ],
    [
      "earlier literal",
      [{ get: "/v1/{name}/b" }, { get: "/v1/a/{name}" }],
      "/v1/a/b",
      "/v1/a/{name}",
    ],
    [
      "named method over custom *",
      [{ custom: { kind: "*", path: "/v1/{name}" } }, { get: "/v1/{title}" }],
      "/v1/a",
      "/v1/{title}",
    ],
  ])("%s", (_, rules, path, winner) => {
    const service = syntheticService(rules.map((rule, i) => ({ name: `M${i}`, rule })));
    const match = createRouteTable([service]).match("GET", path);
    expect(match.kind === "found" ? match.route.template.source : match.kind).toBe(winner);
  });

  it("accepts equivalent templates under different HTTP methods", () => {
    const service = syntheticService([
      { name: "Get", rule: { get: "/v1/{name}" } },
      { name: "Delete", rule: { delete: "/v1/{title}" } },
    ]);
    expect(createRouteTable([service]).routes).toHaveLength(2);
  });

  it("refuses equivalent templates of one method, naming the RPC twice", () => {
    const service = syntheticService([
      { name: "Get", rule: { get: "/v1/{name}", additionalBindings: [{ get: "/v1/{title}" }] } },
    ]);
    expect(() => createRouteTable([service])).toThrow(
      /GET \/v1\/\{name\} \(.*SyntheticService\.Get\) and GET \/v1\/\{title\} \(.*SyntheticService\.Get\)/,
    );
  });
});

describe("route validation at start-up", () => {
  const rpc = "google.api.http of protomesh.gatewaytest.v1.synthetic.SyntheticService.Call";
  it.each<[RuleInit, string, string]>([
    [
      { get: "/v1/{nope}" },
      "TypedRequest",
      'binds "nope", but protomesh.gatewaytest.v1.TypedRequest has no field "nope"',
    ],
    [{ get: "/v1/{names}" }, "TypedRequest", 'binds "names", but "names" is a list field'],
    [
      { get: "/v1/{author}" },
      "TypedRequest",
      "protomesh.gatewaytest.v1.Author cannot be read from text",
    ],
    [{ get: "/v1/{author.nope}" }, "TypedRequest", 'Author has no field "nope"'],
    [{ get: "/v1/{i32.x}" }, "TypedRequest", '"i32" is not a message with fields'],
    [{ get: "/v1/{time.seconds}" }, "TypedRequest", '"time" is not a message with fields'],
    [{ get: "/v1/{labels}" }, "SearchBooksRequest", '"labels" is a map field'],
    [
      { get: "/v1/{extra}" },
      "SearchBooksRequest",
      "google.protobuf.Struct cannot be read from text",
    ],
    [
      { post: "/v1/x", body: "nope" },
      "Book",
      'body "nope" is not a field of protomesh.gatewaytest.v1.Book',
    ],
    [{ post: "/v1/x", body: "tags" }, "Book", 'body "tags" is a list; name a singular field'],
    [{ post: "/v1/x", body: "author.born" }, "Book", 'body "author.born" is not a field'],
    [{ get: "/v1/x", responseBody: "nope" }, "Book", 'response_body "nope" is not a field'],
    [{ get: "/v1/{name" }, "Book", 'invalid path template "/v1/{name": expected "}" at the end'],
    [{}, "Book", "rule without pattern"],
    [{ custom: { kind: "", path: "/v1/x" } }, "Book", "custom pattern without kind"],
    [
      {
        get: "/v1/x",
        additionalBindings: [{ get: "/v1/y", additionalBindings: [{ get: "/v1/z" }] }],
      },
      "Book",
      "additional_bindings may only be one level deep",
    ],
  ])("rejects %j on %s", (rule, input, problem) => {
    const service = syntheticService([{ name: "Call", rule, input }]);
    expect(() => createRouteTable([service])).toThrow(`${rpc}: `);
    expect(() => createRouteTable([service])).toThrow(problem);
  });

  const httpBody = ".google.api.HttpBody";
  it.each<[string, string, "server" | undefined, string, string]>([
    ["offset", "length", undefined, httpBody, "must be server streaming of google.api.HttpBody"],
    ["offset", "length", "server", ".protomesh.gatewaytest.v1.Book", "must be server streaming"],
    ["start", "length", "server", httpBody, 'offset_field "start" is not a field of'],
    ["offset", "name", "server", httpBody, 'length_field "name" must be a singular int64 field'],
    ["offset", "chunk_bytes", "server", httpBody, '"chunk_bytes" must be a singular int64'],
  ])(
    "rejects a download option of %s and %s on %s of %s",
    (offsetField, lengthField, streaming, output, problem) => {
      const service = syntheticService([
        {
          name: "Call",
          rule: { get: "/v1/x" },
          input: "ReadBookRequest",
          output,
          ...(streaming === undefined ? {} : { streaming }),
          download: { offsetField, lengthField },
        },
      ]);
      const build = () => createRouteTable([service]);
      expect(build).toThrow(
        "download option of protomesh.gatewaytest.v1.synthetic.SyntheticService.Call: ",
      );
      expect(build).toThrow(problem);
    },
  );

  it("binds a download's Range to the fields its option names", () => {
    const route = createRouteTable([LibraryService]).routes.find(
      (r) => r.method.name === "ReadBook",
    );
    expect([route?.download?.offset.name, route?.download?.length.name]).toEqual([
      "offset",
      "length",
    ]);
    const plain = createRouteTable([LibraryService]).routes.find(
      (r) => r.method.name === "DownloadBook",
    );
    expect(plain?.download).toBeUndefined();
  });

  it.each<["client" | "bidi", RuleInit, string, string]>([
    ["client", { post: "/v1/x", body: "*" }, "UploadBookRequest", "must name a bytes field"],
    ["client", { post: "/v1/x", body: "shelf_id" }, "UploadBookRequest", "must name a bytes"],
    ["client", { post: "/v1/x" }, "UploadBookRequest", "must name a bytes field"],
    ["bidi", { post: "/v1/x", body: "text" }, "ConverseRequest", 'needs body "*"'],
  ])("rejects a %s-streaming RPC with %j", (streaming, rule, input, problem) => {
    const service = syntheticService([{ name: "Call", rule, input, streaming }]);
    expect(() => createRouteTable([service])).toThrow(`${rpc}: `);
    expect(() => createRouteTable([service])).toThrow(problem);
  });

  it.each<[RuleInit, string]>([
    [{ get: "/v1/{author.display_name}/{genre}/{time}/{limit}" }, "TypedRequest"],
    [{ patch: "/v1/{name}", body: "author" }, "Book"],
    [{ get: "/v1/x", responseBody: "tags" }, "Book"],
  ])("accepts %j on %s", (rule, input) => {
    const service = syntheticService([{ name: "Call", rule, input }]);
    expect(createRouteTable([service]).routes).toHaveLength(1);
  });
});

describe("route table of the protomesh services", () => {
  const services = [UserService, TaskService, FileService, InferenceService];
  const table = createRouteTable(services);

  it("loads every annotated RPC without conflict", () => {
    const annotated = services.flatMap((s) => s.methods).filter((m) => hasOption(m, http));
    expect(annotated.length).toBeGreaterThan(40);
    expect(table.routes).toHaveLength(annotated.length);
  });

  it.each<[string, string, unknown]>([
    ["GET", "/v1/users/me", ["UserService.GetMe", {}]],
    ["HEAD", "/v1/users/me", ["UserService.GetMe", {}]],
    ["HEAD", "/v1/auth/login", "method-not-allowed: POST"],
    ["GET", "/v1/users/abc", ["UserService.GetUser", { id: "abc" }]],
    ["POST", "/v1/users/abc:setRole", ["UserService.SetUserRole", { id: "abc" }]],
    ["PATCH", "/v1/users/me", ["UserService.UpdateMe", {}]],
    ["PATCH", "/v1/tasks/t1", ["TaskService.UpdateTask", { "task.id": "t1" }]],
    ["GET", "/v1/projects/p1/tasks", ["TaskService.ListTasks", { project_id: "p1" }]],
    ["GET", "/v1/projects/p1/tasks:export", ["TaskService.ExportTasks", { project_id: "p1" }]],
    [
      "DELETE",
      "/v1/projects/p1/members/u1",
      ["TaskService.RemoveMember", { project_id: "p1", user_id: "u1" }],
    ],
    ["GET", "/.well-known/jwks.json", ["UserService.GetJwks", {}]],
    ["GET", "/v1/files/f1:download", ["FileService.Download", { id: "f1" }]],
    ["POST", "/v1/conversations/c1:ask", ["InferenceService.Ask", { id: "c1" }]],
    ["PUT", "/v1/users/me", "method-not-allowed: DELETE, GET, HEAD, PATCH"],
    ["GET", "/v1/nothing", "not-found"],
  ])("%s %s", (httpMethod, path, expected) => {
    expect(summarize(table.match(httpMethod, path))).toEqual(expected);
  });
});
