import type { DescMessage } from "@bufbuild/protobuf";
import { getOption, hasOption } from "@bufbuild/protobuf";
import { http } from "../../gen/google/api/annotations_pb.ts";
import { authPolicyOf } from "../../kit/auth/auth-policy.ts";
import { textTypeOf } from "../routing/field-text.ts";
import type { Route, RouteTable } from "../routing/route-table.ts";
import { rpcName } from "../routing/route-table.ts";
import { componentsRef, createSchemaSet, type JsonSchema, type SchemaSet } from "./json-schema.ts";
import { downloadParameters, downloadResponses } from "./openapi-download.ts";
import { openApiPathOf } from "./openapi-path.ts";

/** A parameter of an operation: a path variable, a query parameter or a request header. */
export interface OpenApiParameter {
  readonly name: string;
  readonly in: "path" | "query" | "header";
  readonly required?: boolean;
  readonly description?: string;
  readonly schema: JsonSchema;
  readonly style?: "form";
  readonly explode?: boolean;
}

/** The content of a request or response, by media type. */
export type OpenApiContent = Record<string, { readonly schema: JsonSchema }>;

/** A response of an operation, or a `$ref` to a shared one. */
export type OpenApiResponse =
  | { readonly description: string; readonly content?: OpenApiContent; readonly headers?: object }
  | { readonly $ref: string };

/** One operation: an HTTP binding of an RPC. */
export interface OpenApiOperation {
  readonly operationId: string;
  readonly summary: string;
  readonly description: string;
  readonly tags: readonly string[];
  readonly parameters: readonly OpenApiParameter[];
  readonly requestBody?: { readonly description?: string; readonly content: OpenApiContent };
  readonly responses: Readonly<Record<string, OpenApiResponse>>;
  /** Empty for a public RPC, the bearer scheme otherwise. */
  readonly security: readonly Readonly<Record<string, readonly string[]>>[];
  /** The RPC the operation calls, "package.Service/Method". */
  readonly "x-protomesh-rpc": string;
  /** Set on a bidirectional-streaming RPC, which is served over WebSocket. */
  readonly "x-protomesh-websocket"?: true;
}

/** The HTTP methods an OpenAPI path item has a field for, in lower case. */
export const openApiMethods = [
  "get",
  "put",
  "post",
  "delete",
  "options",
  "head",
  "patch",
  "trace",
] as const;

/** The operations of one path. */
export type OpenApiPathItem = {
  -readonly [M in (typeof openApiMethods)[number]]?: OpenApiOperation;
} & {
  /**
   * Operations of HTTP methods OpenAPI has no field for ("PURGE", or "*" for any method), by
   * method: they answer, but OpenAPI tools do not show or call them.
   */
  "x-protomesh-methods"?: Record<string, OpenApiOperation>;
};

/** An OpenAPI 3.1 document. */
export interface OpenApiDocument {
  readonly openapi: "3.1.0";
  readonly info: { readonly title: string; readonly version: string; readonly description: string };
  readonly tags: readonly { readonly name: string }[];
  readonly paths: Readonly<Record<string, OpenApiPathItem>>;
  readonly components: {
    readonly schemas: Readonly<Record<string, JsonSchema>>;
    readonly responses: Readonly<Record<string, OpenApiResponse>>;
    readonly securitySchemes: Readonly<Record<string, object>>;
  };
}

/** Options of `createOpenApiDocument`. */
export interface OpenApiOptions {
  readonly title?: string;
  readonly version?: string;
  /** The contracts' comments by full name (loadProtoComments), for descriptions. */
  readonly comments?: ReadonlyMap<string, string>;
}

const errorSchema: JsonSchema = {
  type: "object",
  required: ["code", "message", "details"],
  properties: {
    code: { type: "integer", format: "int32", description: "The google.rpc.Code." },
    message: { type: "string" },
    details: {
      type: "array",
      items: {
        type: "object",
        required: ["@type", "value"],
        properties: {
          "@type": { type: "string" },
          value: { type: "string", format: "byte", contentEncoding: "base64" },
          debug: {},
        },
      },
    },
  },
};

const errorContent: OpenApiContent = {
  "application/json": { schema: { $ref: `${componentsRef}Error` } },
};

const sharedResponses: Record<string, OpenApiResponse> = {
  BadRequest: {
    description: "Invalid argument: a bad path, query or body value, or a failed precondition.",
    content: errorContent,
  },
  Unauthenticated: {
    description: "No valid bearer token.",
    headers: { "WWW-Authenticate": { schema: { type: "string" } } },
    content: errorContent,
  },
  PermissionDenied: { description: "The caller may not do this.", content: errorContent },
  NotFound: { description: "No such resource.", content: errorContent },
  Error: {
    description: "An error, with the HTTP status of its google.rpc code.",
    content: errorContent,
  },
};

const documentDescription = `JSON/HTTP routes of gRPC services, transcoded by the protomesh gateway from each RPC's \`google.api.http\` rule.

Every error is \`{"code": <google.rpc code>, "message": "...", "details": [...]}\` (the Error schema) with the HTTP status of its code.

Streaming: a server-streaming RPC answers \`text/event-stream\` when the request has \`Accept: text/event-stream\` (each message one event \`data: <message JSON>\`; an error after the stream started is a last \`event: error\` whose data is the Error JSON), and \`application/x-ndjson\` otherwise (each line \`{"result": <message JSON>}\`; an error is a last line \`{"error": <Error JSON>}\`). A google.api.HttpBody response is sent as raw bytes with the message's content type; an operation that documents the \`Range\` header is a ranged download, which answers 206 to a byte range, 416 to a range beyond the end, 304 to an \`If-None-Match\` that names its ETag, with the Content-Length of its body. A client-streaming RPC streams the request body into the bytes field its rule names: the raw body (any content type), or the one file part of a \`multipart/form-data\` form whose text fields bind like query parameters; the path and query parameters bind to a first message. A bidirectional-streaming RPC is a WebSocket on its route's path (marked \`x-protomesh-websocket\`): each text frame is one JSON message either way; a plain HTTP request gets 426.

Operations of HTTP methods OpenAPI cannot express (custom methods such as PURGE, or "*" for any method) are listed under \`x-protomesh-methods\` of their path.

Resumable uploads: where the file service is routed, \`/v1/tus/\` speaks the tus 1.0 protocol (core, creation, termination, expiration) over its upload sessions, for tus clients such as tus-js-client and Uppy. It is not listed among the paths: tus defines its requests by their headers, which clients set for themselves.`;

/**
 * Builds the OpenAPI 3.1 document of a route table: one operation per route, in the proto3 JSON
 * mapping, with the auth policy, streaming conventions and error shape the gateway applies. It
 * is built from the table the gateway serves, so every documented operation answers.
 */
export function createOpenApiDocument(
  table: RouteTable,
  options: OpenApiOptions = {},
): OpenApiDocument {
  const comments = options.comments ?? new Map<string, string>();
  const schemas = createSchemaSet(comments);
  const items = new Map<string, OpenApiPathItem>();
  // Paths that differ only in parameter names are one path in OpenAPI: the first route of a
  // shape names its parameters, later routes of the same shape reuse those names.
  const namesByShape = new Map<string, readonly string[]>();
  const tags = new Set<string>();
  const operationIds = new Set<string>();

  for (const route of table.routes) {
    // Every request and response message is a component, referenced or not: a WebSocket's
    // messages and the fields behind query parameters are named in descriptions.
    schemas.message(route.method.input);
    schemas.message(route.method.output);
    const shapeOf = openApiPathOf(route, schemas);
    const known = namesByShape.get(shapeOf.shape);
    const { path, parameters } = shapeOf.build(known);
    if (known === undefined)
      namesByShape.set(
        shapeOf.shape,
        parameters.map((p) => p.name),
      );
    const item = items.get(path) ?? {};
    items.set(path, item);
    const standard = openApiMethods.find((m) => m.toUpperCase() === route.httpMethod);
    // The table is most specific first: a later route of the same path and method is shadowed.
    if (standard !== undefined ? item[standard] : item["x-protomesh-methods"]?.[route.httpMethod]) {
      continue;
    }
    const operation = createOperation(route, schemas, parameters, operationIds, comments);
    tags.add(operation.tags[0] ?? "");
    if (standard !== undefined) {
      item[standard] = operation;
    } else {
      item["x-protomesh-methods"] ??= {};
      item["x-protomesh-methods"][route.httpMethod] = operation;
    }
  }

  const paths: Record<string, OpenApiPathItem> = {};
  for (const path of [...items.keys()].sort()) paths[path] = items.get(path) ?? {};
  const sortedSchemas = Object.fromEntries(
    Object.entries(schemas.components).sort(([a], [b]) => a.localeCompare(b)),
  );
  return {
    openapi: "3.1.0",
    info: {
      title: options.title ?? "protomesh gateway",
      version: options.version ?? "v1",
      description: documentDescription,
    },
    tags: [...tags].sort().map((name) => ({ name })),
    paths,
    components: {
      schemas: { ...sortedSchemas, Error: errorSchema },
      responses: sharedResponses,
      securitySchemes: { bearer: { type: "http", scheme: "bearer", bearerFormat: "JWT" } },
    },
  };
}

function createOperation(
  route: Route,
  schemas: SchemaSet,
  pathParameters: readonly OpenApiParameter[],
  operationIds: Set<string>,
  comments: ReadonlyMap<string, string>,
): OpenApiOperation {
  const method = route.method;
  const service = method.parent;
  const binding = bindingIndexOf(route);
  let operationId = `${service.name}_${method.name}${binding === 0 ? "" : `_${binding}`}`;
  // Two services of the same name in different packages: the full name keeps ids unique.
  if (operationIds.has(operationId))
    operationId = `${rpcName(method).replaceAll(".", "_")}_${binding}`;
  operationIds.add(operationId);

  const policy = authPolicyOf(method);
  const access =
    policy.kind === "public"
      ? "Public: no token needed."
      : policy.kind === "role"
        ? `Requires a bearer token with the role "${policy.role}".`
        : "Requires a bearer token.";
  const said = comments.get(rpcName(method));
  const notes = [...(said === undefined ? [] : [said]), `Calls \`${rpcName(method)}\`.`, access];

  const parameters = [
    ...pathParameters,
    ...queryParameters(route, schemas),
    ...(route.download === undefined ? [] : downloadParameters),
  ];
  const requestBody = requestBodyOf(route, schemas, notes);
  const responses: Record<string, OpenApiResponse> = { ...successResponses(route, schemas, notes) };
  responses["400"] = { $ref: "#/components/responses/BadRequest" };
  if (policy.kind !== "public") {
    responses["401"] = { $ref: "#/components/responses/Unauthenticated" };
    responses["403"] = { $ref: "#/components/responses/PermissionDenied" };
  }
  if (pathParameters.length > 0) responses["404"] = { $ref: "#/components/responses/NotFound" };
  responses.default = { $ref: "#/components/responses/Error" };

  return {
    operationId,
    summary: method.name,
    description: notes.join("\n\n"),
    tags: [service.typeName],
    parameters,
    ...(requestBody === undefined ? {} : { requestBody }),
    responses,
    security: policy.kind === "public" ? [] : [{ bearer: [] }],
    "x-protomesh-rpc": `${service.typeName}/${method.name}`,
    ...(method.methodKind === "bidi_streaming" ? { "x-protomesh-websocket": true as const } : {}),
  };
}

// 0 for the rule itself, 1, 2, ... for its additional bindings, in declaration order.
function bindingIndexOf(route: Route): number {
  if (!hasOption(route.method, http)) return 0;
  const rule = getOption(route.method, http);
  const index = [rule, ...rule.additionalBindings].findIndex((binding) => {
    const { pattern } = binding;
    if (pattern.case === undefined) return false;
    const [kind, path] =
      pattern.case === "custom"
        ? [pattern.value.kind, pattern.value.path]
        : [pattern.case.toUpperCase(), pattern.value];
    return kind === route.httpMethod && path === route.template.source;
  });
  return Math.max(index, 0);
}

// Every field the query string can set: leaves with a text form, reached through singular
// message fields, except those bound by the path or read from the body.
function queryParameters(route: Route, schemas: SchemaSet): OpenApiParameter[] {
  if (route.body === "*") return [];
  const pathFields = [...route.pathFields.keys()];
  const parameters: OpenApiParameter[] = [];
  const walk = (message: DescMessage, jsonPrefix: string, protoPrefix: string, seen: string[]) => {
    for (const field of message.fields) {
      if (seen.length === 1 && field === route.bodyField) continue;
      const protoPath = protoPrefix + field.name;
      const name = jsonPrefix + field.jsonName;
      if (textTypeOf(field) !== undefined) {
        if (pathFields.some((p) => p === protoPath || p.startsWith(`${protoPath}.`))) continue;
        const list = field.fieldKind === "list";
        const description = schemas.describe(field);
        parameters.push({
          name,
          in: "query",
          schema: schemas.field(field),
          ...(description === undefined ? {} : { description }),
          ...(list ? { style: "form" as const, explode: true } : {}),
        });
        continue;
      }
      if (field.fieldKind !== "message") continue;
      const typeName = field.message.typeName;
      // Well-known messages without a text form (Struct, Any, ...) cannot be set from a URL;
      // a message already on the way down would recurse forever.
      if (typeName.startsWith("google.protobuf.") || seen.includes(typeName)) continue;
      walk(field.message, `${name}.`, `${protoPath}.`, [...seen, typeName]);
    }
  };
  walk(route.method.input, "", "", [route.method.input.typeName]);
  return parameters;
}

function requestBodyOf(
  route: Route,
  schemas: SchemaSet,
  notes: string[],
): OpenApiOperation["requestBody"] {
  const { method } = route;
  if (method.methodKind === "bidi_streaming" || route.body === "") return undefined;
  // The route table admits a client-streaming RPC only with a bytes field as its body.
  if (method.methodKind === "client_streaming") {
    const field = route.bodyField?.jsonName ?? route.body;
    notes.push(
      `Client streaming: the request body is streamed into \`${field}\`, as raw bytes (any content type) or as the one file part of a multipart/form-data form whose text fields bind like query parameters. The path and query parameters bind to a first message.`,
    );
    const form: Record<string, JsonSchema> = {};
    for (const p of queryParameters(route, schemas)) form[p.name] = p.schema;
    form[field] = { type: "string", format: "binary" };
    return {
      content: {
        "application/octet-stream": { schema: { type: "string", format: "binary" } },
        "multipart/form-data": { schema: { type: "object", properties: form } },
      },
    };
  }
  const schema =
    route.bodyField === undefined ? schemas.message(method.input) : schemas.field(route.bodyField);
  if (route.body === "*" && route.pathFields.size > 0) {
    notes.push("Fields bound by the path are taken from the URL, whatever the body says.");
  }
  if (route.httpMethod === "PATCH" && route.bodyField?.fieldKind === "message") {
    const mask = method.input.fields.find((f) => f.name === "update_mask");
    if (mask?.fieldKind === "message" && mask.message.typeName === "google.protobuf.FieldMask") {
      notes.push("Without `updateMask`, the fields present in the body are updated.");
    }
  }
  return { content: { "application/json": { schema } } };
}

function successResponses(
  route: Route,
  schemas: SchemaSet,
  notes: string[],
): Record<string, OpenApiResponse> {
  const { method } = route;
  const rawBytes =
    route.responseBodyField === undefined && method.output.typeName === "google.api.HttpBody";
  const schema =
    route.responseBodyField === undefined
      ? schemas.message(method.output)
      : schemas.field(route.responseBodyField);
  const binary: OpenApiContent = { "*/*": { schema: { type: "string", format: "binary" } } };
  switch (method.methodKind) {
    case "unary":
    case "client_streaming":
      if (rawBytes) {
        return {
          "200": {
            description: "The bytes, with the content type of the message.",
            content: binary,
          },
        };
      }
      return { "200": { description: "OK", content: { "application/json": { schema } } } };
    case "server_streaming":
      // The route table admits the download option on raw bytes only.
      if (route.download !== undefined) return downloadResponses(errorContent, notes);
      if (rawBytes) {
        notes.push(
          "Server streaming: the response is the bytes of every message, with the content type of the first; an error after the first bytes aborts the response.",
        );
        return { "200": { description: "The streamed bytes.", content: binary } };
      }
      notes.push(
        'Server streaming: with `Accept: text/event-stream`, each message is one server-sent event `data: <message JSON>` and an error after the start is a last `event: error` with the Error JSON; otherwise each line of the NDJSON body is `{"result": <message>}`, and an error a last line `{"error": <Error>}`.',
      );
      return {
        "200": {
          description: "A stream of messages.",
          content: {
            "application/x-ndjson": {
              schema: {
                type: "object",
                description: "One line of the stream.",
                properties: { result: schema, error: { $ref: `${componentsRef}Error` } },
              },
            },
            "text/event-stream": {
              schema: {
                type: "string",
                description: `Server-sent events whose data is a ${method.output.typeName} in JSON.`,
              },
            },
          },
        },
      };
    case "bidi_streaming":
      notes.push(
        `Bidirectional streaming over WebSocket: open a WebSocket (GET with \`Upgrade: websocket\`) on this path, send each ${method.input.typeName} as one JSON text frame and receive each ${method.output.typeName} as one JSON text frame. The path parameters bind into every request message.`,
      );
      return {
        "101": { description: "Switching to the WebSocket protocol." },
        "426": {
          description: "A plain HTTP request: upgrade to WebSocket.",
          headers: { Upgrade: { schema: { type: "string", const: "websocket" } } },
          content: errorContent,
        },
      };
  }
}
