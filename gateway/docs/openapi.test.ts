import { hasOption } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { http } from "../../gen/google/api/annotations_pb.ts";
import { FileService } from "../../gen/protomesh/file/v1/file_pb.ts";
import { InferenceService } from "../../gen/protomesh/inference/v1/inference_pb.ts";
import { TaskService } from "../../gen/protomesh/task/v1/task_pb.ts";
import { UserService } from "../../gen/protomesh/user/v1/user_pb.ts";
import {
  operationById,
  operationsOf,
  parameterOf,
  samplePath,
  validateOpenApi,
} from "../../test/support/openapi.ts";
import { createRouteTable, rpcName } from "../routing/route-table.ts";
import { LibraryService } from "../testdata/gen/protomesh/gatewaytest/v1/gatewaytest_pb.ts";
import { createOpenApiDocument, type OpenApiDocument } from "./openapi.ts";
import { loadProtoComments } from "./proto-comments.ts";

const libraryTable = createRouteTable([LibraryService]);
const library = createOpenApiDocument(libraryTable);
const meshServices = [UserService, TaskService, FileService, InferenceService];
const mesh = createOpenApiDocument(createRouteTable(meshServices), {
  comments: loadProtoComments(),
});

const schemaOf = (doc: OpenApiDocument, name: string) => {
  const schema = doc.components.schemas[name];
  if (schema === undefined) throw new Error(`no schema ${name}`);
  return schema as { properties: Record<string, Record<string, unknown>> };
};

describe("the OpenAPI document", () => {
  it.each([
    ["the mesh", mesh],
    ["the test contract", library],
  ])("of %s is valid OpenAPI 3.1", async (_, doc) => {
    const result = await validateOpenApi(doc);
    expect(result.errors).toBeUndefined();
    expect(result).toMatchObject({ valid: true, version: "3.1" });
  });

  it.each([
    ["the mesh", mesh],
    ["the test contract", library],
  ])("of %s documents only paths the gateway routes to the same RPC", (_, doc) => {
    const table = doc === mesh ? createRouteTable(meshServices) : libraryTable;
    for (const op of operationsOf(doc)) {
      const names = [...op.path.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]);
      const declared = op.operation.parameters.filter((p) => p.in === "path").map((p) => p.name);
      expect(declared, op.path).toEqual(names);
      const match = table.match(op.method, samplePath(doc, op));
      expect(match.kind, `${op.method} ${op.path}`).toBe("found");
      if (match.kind !== "found") continue;
      expect(rpcName(match.route.method).replace(/\.(\w+)$/, "/$1")).toBe(
        op.operation["x-protomesh-rpc"],
      );
    }
  });

  it("lists every annotated RPC of the mesh once per binding, with unique operation ids", () => {
    const ids = operationsOf(mesh).map((o) => o.operation.operationId);
    expect(new Set(ids).size).toBe(ids.length);
    const annotated = meshServices.flatMap((s) =>
      s.methods.filter((m) => hasOption(m, http)).map((m) => `${s.name}_${m.name}`),
    );
    expect(ids.sort()).toEqual(annotated.sort());
    expect(operationById(mesh, "UserService_GetMe")).toMatchObject({
      method: "GET",
      path: "/v1/users/me",
    });
  });

  it("gives additional bindings their own operation with a numbered id", () => {
    expect(operationById(library, "LibraryService_GetBook_1").path).toBe("/v1/books/{name}");
    expect(operationById(library, "LibraryService_UpdateBook_1").method).toBe("PUT");
  });

  it("types path parameters like their fields", () => {
    const get = operationById(library, "LibraryService_GetShelf");
    expect(get.path).toBe("/v1/shelves/{shelf_id}");
    expect(parameterOf(get.operation, "path", "shelf_id")).toMatchObject({
      required: true,
      schema: { type: "string" },
    });
    const typed = operationById(library, "LibraryService_GetTyped").operation;
    expect(parameterOf(typed, "path", "i64").schema).toMatchObject({
      type: "string",
      format: "int64",
    });
    expect(parameterOf(typed, "path", "i32").schema).toMatchObject({ type: "integer" });
    expect(parameterOf(typed, "path", "time").schema).toMatchObject({ format: "date-time" });
    expect(parameterOf(typed, "path", "genre").schema).toEqual({
      $ref: "#/components/schemas/protomesh.gatewaytest.v1.Genre",
    });
  });

  it("spells out multi-segment variables, and says a ** value takes its slashes as they are", () => {
    const get = operationById(library, "LibraryService_GetBook");
    expect(get.path).toBe("/v1/shelves/{name_1}/books/{name_2}");
    const match = libraryTable.match("GET", "/v1/shelves/s1/books/b2");
    expect(match.kind === "found" && match.bindings.get("name")).toBe("shelves/s1/books/b2");

    const object = operationById(library, "LibraryService_GetObject");
    expect(object.path).toBe("/v1/objects/{path}");
    expect(parameterOf(object.operation, "path", "path").description).toContain('Send "/"');
    // Routes of one shape share their parameter names; the description names the real field.
    const put = operationById(library, "LibraryService_UpdateBook_1");
    expect(put.path).toBe("/v1/shelves/{name_1}/books/{name_2}");
    expect(parameterOf(put.operation, "path", "name_2").description).toBe("Sets `book.name`.");
  });

  it("offers every field the query string can set, and only those", () => {
    const search = operationById(library, "LibraryService_SearchBooks").operation;
    const names = search.parameters.map((p) => p.name);
    expect(names).toEqual(
      expect.arrayContaining(["query", "filter.author.displayName", "filter.tags", "days"]),
    );
    expect(names).not.toContain("labels");
    expect(names).not.toContain("extra");
    expect(parameterOf(search, "query", "tags")).toMatchObject({
      style: "form",
      explode: true,
      schema: { type: "array", items: { type: "string" } },
    });
    expect(parameterOf(search, "query", "minPages").schema).toMatchObject({ type: "string" });
    expect(parameterOf(search, "query", "maxAge").schema).toMatchObject({
      format: "google-duration",
    });
    expect(parameterOf(search, "query", "minYear").schema).toMatchObject({ type: "integer" });
    expect(parameterOf(search, "query", "orderBy").description).toContain("randomSeed");
    expect(library.components.schemas["protomesh.gatewaytest.v1.Genre"]).toEqual({
      type: "string",
      enum: ["GENRE_UNSPECIFIED", "GENRE_FICTION", "GENRE_POETRY"],
    });

    // Neither the body field nor path-bound fields are offered again.
    const create = operationById(library, "LibraryService_CreateBook").operation;
    expect(create.parameters.map((p) => `${p.in}:${p.name}`)).toEqual([
      "path:shelf_id",
      "query:requestId",
    ]);
    expect(operationById(library, "LibraryService_MoveBook").operation.parameters).toHaveLength(2);
  });

  it("documents the body per the rule and the response per response_body", () => {
    const create = operationById(library, "LibraryService_CreateBook").operation;
    expect(create.requestBody?.content["application/json"]?.schema).toEqual({
      $ref: "#/components/schemas/protomesh.gatewaytest.v1.Book",
    });
    expect(create.responses["200"]).toMatchObject({
      content: { "application/json": { schema: { type: "string" } } },
    });
    const move = operationById(library, "LibraryService_MoveBook").operation;
    expect(move.requestBody?.content["application/json"]?.schema).toEqual({
      $ref: "#/components/schemas/protomesh.gatewaytest.v1.MoveBookRequest",
    });
    const search = operationById(library, "LibraryService_SearchBooks").operation;
    expect(search.responses["200"]).toMatchObject({
      content: { "application/json": { schema: { type: "array" } } },
    });
    expect(operationById(library, "LibraryService_GetShelf").operation.requestBody).toBeUndefined();
    expect(operationById(mesh, "UserService_UpdateMe").operation.description).toContain(
      "updateMask",
    );
  });

  it("writes messages in the proto3 JSON mapping", () => {
    const book = schemaOf(library, "protomesh.gatewaytest.v1.Book").properties;
    expect(book.pages).toMatchObject({ type: "string", format: "int64" });
    expect(book.shelfId).toEqual({ type: "string" });
    expect(book.isbnCode).toEqual({ type: "string" });
    expect(book.publishTime).toMatchObject({ type: "string", format: "date-time" });
    expect(book.tags).toEqual({ type: "array", items: { type: "string" } });
    expect(book.author).toEqual({ $ref: "#/components/schemas/protomesh.gatewaytest.v1.Author" });
    const search = schemaOf(library, "protomesh.gatewaytest.v1.SearchBooksRequest").properties;
    expect(search.labels).toEqual({ type: "object", additionalProperties: { type: "string" } });
    expect(search.extra).toMatchObject({ type: "object", additionalProperties: true });
    expect(search.cursor).toMatchObject({ type: "string", format: "byte" });
    expect(search.maxPages).toMatchObject({ type: "string", format: "uint64" });
    const upload = schemaOf(library, "protomesh.gatewaytest.v1.UploadBookRequest").properties;
    expect(upload.chunk?.description).toContain('one-of "payload"');
  });

  it("marks public operations with no security and the others with the bearer token", () => {
    expect(library.components.securitySchemes.bearer).toEqual({
      type: "http",
      scheme: "bearer",
      bearerFormat: "JWT",
    });
    expect(operationById(mesh, "UserService_Register").operation.security).toEqual([]);
    const me = operationById(mesh, "UserService_GetMe").operation;
    expect(me.security).toEqual([{ bearer: [] }]);
    expect(me.responses["401"]).toEqual({ $ref: "#/components/responses/Unauthenticated" });
    const list = operationById(mesh, "UserService_ListUsers").operation;
    expect(list.security).toEqual([{ bearer: [] }]);
    expect(list.description).toContain('role "admin"');
  });

  it("describes errors with the Error schema", () => {
    expect(mesh.components.schemas.Error).toMatchObject({
      required: ["code", "message", "details"],
    });
    const me = operationById(mesh, "UserService_GetMe").operation;
    expect(me.responses.default).toEqual({ $ref: "#/components/responses/Error" });
    expect(me.responses["400"]).toEqual({ $ref: "#/components/responses/BadRequest" });
  });

  it("documents the streaming conventions", () => {
    const stream = operationById(library, "LibraryService_StreamBooks").operation;
    expect(Object.keys((stream.responses["200"] as { content: object }).content)).toEqual([
      "application/x-ndjson",
      "text/event-stream",
    ]);
    for (const id of ["LibraryService_DownloadBook", "LibraryService_GetShelf"]) {
      const raw = id === "LibraryService_DownloadBook";
      const content = (operationById(library, id).operation.responses["200"] as { content: object })
        .content;
      expect(Object.keys(content)).toEqual([raw ? "*/*" : "application/json"]);
    }
    expect(operationById(mesh, "FileService_GetThumbnail").operation.responses["200"]).toEqual({
      description: expect.any(String),
      content: { "*/*": { schema: { type: "string", format: "binary" } } },
    });

    const upload = operationById(library, "LibraryService_UploadBook").operation;
    const content = upload.requestBody?.content ?? {};
    expect(Object.keys(content)).toEqual(["application/octet-stream", "multipart/form-data"]);
    expect(content["multipart/form-data"]?.schema).toMatchObject({
      properties: { chunk: { format: "binary" }, "book.title": { type: "string" } },
    });

    const converse = operationById(library, "LibraryService_Converse");
    expect(converse.method).toBe("POST");
    expect(converse.operation["x-protomesh-websocket"]).toBe(true);
    expect(converse.operation.description).toContain("WebSocket");
    expect(Object.keys(converse.operation.responses)).toContain("426");
  });

  it("documents the headers and answers of ranged downloads", () => {
    for (const [doc, id] of [
      [library, "LibraryService_ReadBook"],
      [mesh, "FileService_Download"],
      [mesh, "FileService_DownloadSigned"],
    ] as const) {
      const { operation } = operationById(doc, id);
      const headers = operation.parameters.filter((p) => p.in === "header").map((p) => p.name);
      expect(headers, id).toEqual(["Range", "If-Range", "If-None-Match"]);
      const headersOf = (status: string) =>
        Object.keys((operation.responses[status] as { headers?: object }).headers ?? {});
      expect(headersOf("200"), id).toEqual(expect.arrayContaining(["Content-Length", "ETag"]));
      expect(headersOf("206"), id).toEqual(expect.arrayContaining(["Content-Range"]));
      expect(headersOf("304"), id).toEqual(expect.arrayContaining(["ETag"]));
      expect(operation.responses["416"], id).toMatchObject({
        headers: { "Content-Range": expect.any(Object) },
        content: { "application/json": { schema: { $ref: "#/components/schemas/Error" } } },
      });
      expect(operation.description, id).toContain("Ranged download");
    }
    const plain = operationById(library, "LibraryService_DownloadBook").operation;
    expect(plain.parameters.some((p) => p.in === "header")).toBe(false);
    expect(Object.keys(plain.responses)).not.toContain("206");
  });

  it("describes operations, messages, fields and enums with the contracts' comments", () => {
    const getMe = operationsOf(mesh).find((op) => op.operation.operationId === "UserService_GetMe");
    expect(getMe?.operation.description).toMatch(/^Returns the account of the caller\./);
    const register = schemaOf(mesh, "protomesh.user.v1.RegisterRequest");
    expect(register.properties.email?.description).toBe(
      "Email address to register. Required; at most 254 characters;\ncase-insensitive.",
    );
    expect(mesh.components.schemas["protomesh.user.v1.User"]).toHaveProperty("description");
    expect(mesh.components.schemas["protomesh.user.v1.Role"]).toHaveProperty("description");
    const listUsers = operationsOf(mesh).find(
      (op) => op.operation.operationId === "UserService_ListUsers",
    );
    const pageSize = listUsers?.operation.parameters.find((p) => p.name === "pageSize");
    expect(pageSize?.description).toMatch(/\S/);
  });

  it("lists custom HTTP methods under x-protomesh-methods, outside the standard operations", () => {
    const purge = library.paths["/v1/cache/{key}"];
    expect(Object.keys(purge ?? {})).toEqual(["x-protomesh-methods"]);
    expect(purge?.["x-protomesh-methods"]?.PURGE?.operationId).toBe("LibraryService_PurgeCache");
    expect(library.paths["/v1/echo/{text}"]?.["x-protomesh-methods"]?.["*"]).toBeDefined();
  });
});
