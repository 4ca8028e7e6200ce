import type { DescField, DescMessage, DescMethod, DescService } from "@bufbuild/protobuf";
import { getOption, hasOption, ScalarType } from "@bufbuild/protobuf";
import { http } from "../../gen/google/api/annotations_pb.ts";
import type { HttpRule } from "../../gen/google/api/http_pb.ts";
import { download } from "../../gen/protomesh/options/v1/options_pb.ts";
import { textTypeOf } from "./field-text.ts";
import type { PathTemplate } from "./path-template.ts";
import { createPathTemplate, splitPath } from "./path-template.ts";

/** One HTTP binding of an RPC, from its `google.api.http` rule or one of its additional bindings. */
export interface Route {
  /** "GET", "POST", ..., a custom kind such as "HEAD", or "*" for any method. */
  readonly httpMethod: string;
  readonly template: PathTemplate;
  readonly method: DescMethod;
  /** "" (no body), "*" (the whole request message) or the name of a request field. */
  readonly body: string;
  /** "" (the whole response message) or the name of a response field. */
  readonly responseBody: string;
  /** The request field named by `body`, if it names one. */
  readonly bodyField: DescField | undefined;
  /** The response field named by `responseBody`, if it names one. */
  readonly responseBodyField: DescField | undefined;
  /** For each template variable, the chain of fields its field path walks, outermost first. */
  readonly pathFields: ReadonlyMap<string, readonly DescField[]>;
  /** Set when the RPC is served as a ranged HTTP download (`protomesh.options.v1.download`). */
  readonly download: DownloadFields | undefined;
}

/** The request fields a ranged download binds a `Range` header to. */
export interface DownloadFields {
  /** The int64 field of the first byte's offset. */
  readonly offset: DescField;
  /** The int64 field of the number of bytes. */
  readonly length: DescField;
}

/** The result of looking up a request in the route table. */
export type RouteMatch =
  | { readonly kind: "found"; readonly route: Route; readonly bindings: Map<string, string> }
  | { readonly kind: "not-found" }
  /** The path matches routes of other HTTP methods only; `allow` lists them, sorted. */
  | { readonly kind: "method-not-allowed"; readonly allow: string[] };

/** The HTTP routes of a set of services, checked at start-up. */
export interface RouteTable {
  /** Every route, most specific first. */
  readonly routes: readonly Route[];
  /**
   * Finds the route of a request by HTTP method and raw (percent-encoded) path without query.
   * Throws a ConnectError (InvalidArgument) on a malformed percent-encoding.
   */
  match(httpMethod: string, rawPath: string): RouteMatch;
}

/**
 * Builds the routes of every method with a `google.api.http` option, including its
 * additional bindings. Throws at start-up, naming the RPC, on an invalid template, a field that
 * does not exist or cannot be bound, or two routes that match the same requests.
 */
export function createRouteTable(services: readonly DescService[]): RouteTable {
  const routes: Route[] = [];
  for (const service of services) {
    for (const method of service.methods) {
      if (!hasOption(method, http)) continue;
      const rule = getOption(method, http);
      routes.push(createRoute(method, rule));
      for (const binding of rule.additionalBindings) {
        if (binding.additionalBindings.length > 0) {
          throw ruleError(method, "additional_bindings may only be one level deep");
        }
        routes.push(createRoute(method, binding));
      }
    }
  }
  rejectAmbiguous(routes);
  routes.sort(compareSpecificity);

  // The routes that can match a path of n segments, in precedence order, built on first use:
  // a request tries only those, on a path split once. Past a bound, paths no client of these
  // routes sends are not cached, so such requests cannot grow the table.
  const bySegmentCount = new Map<number, readonly Route[]>();
  const maxCachedCount = 32;
  const candidatesFor = (count: number): readonly Route[] => {
    let candidates = bySegmentCount.get(count);
    if (candidates === undefined) {
      candidates = routes.filter(({ template }) => template.fitsSegmentCount(count));
      if (count <= maxCachedCount) bySegmentCount.set(count, candidates);
    }
    return candidates;
  };

  function match(httpMethod: string, rawPath: string): RouteMatch {
    if (!rawPath.startsWith("/")) return { kind: "not-found" };
    const path = splitPath(rawPath);
    let allow: Set<string> | undefined;
    for (const route of candidatesFor(path.raw.length)) {
      const bindings = route.template.matchSplit(path);
      if (bindings === undefined) continue;
      if (accepts(route, httpMethod)) return { kind: "found", route, bindings };
      allow ??= new Set();
      for (const accepted of methodsOf(route)) allow.add(accepted);
    }
    if (allow === undefined) return { kind: "not-found" };
    return { kind: "method-not-allowed", allow: [...allow].sort() };
  }

  return { routes, match };
}

/** The full name of an RPC, for messages: "protomesh.user.v1.UserService.GetUser". */
export function rpcName(method: DescMethod): string {
  return `${method.parent.typeName}.${method.name}`;
}

function createRoute(method: DescMethod, rule: HttpRule): Route {
  const { httpMethod, path } = patternOf(method, rule);
  let template: PathTemplate;
  try {
    template = createPathTemplate(path);
  } catch (err) {
    throw ruleError(method, err instanceof Error ? err.message : String(err));
  }
  const pathFields = new Map<string, readonly DescField[]>();
  for (const v of template.variables) {
    pathFields.set(v.fieldPath, resolveVariable(method, template, v.fieldPath));
  }
  let bodyField: DescField | undefined;
  if (rule.body !== "" && rule.body !== "*") {
    bodyField = method.input.fields.find((f) => f.name === rule.body);
    if (bodyField === undefined) {
      throw ruleError(method, `body "${rule.body}" is not a field of ${method.input.typeName}`);
    }
    if (bodyField.fieldKind === "list" || bodyField.fieldKind === "map") {
      throw ruleError(
        method,
        `body "${rule.body}" is a ${bodyField.fieldKind}; name a singular field`,
      );
    }
  }
  if (method.methodKind === "client_streaming" && !isBytes(bodyField)) {
    throw ruleError(
      method,
      "a client-streaming RPC's body must name a bytes field: the HTTP body streams into it",
    );
  }
  if (method.methodKind === "bidi_streaming" && rule.body !== "*") {
    throw ruleError(
      method,
      'a bidirectional-streaming RPC needs body "*": each WebSocket frame is a whole message',
    );
  }
  let responseBodyField: DescField | undefined;
  if (rule.responseBody !== "") {
    responseBodyField = method.output.fields.find((f) => f.name === rule.responseBody);
    if (responseBodyField === undefined) {
      throw ruleError(
        method,
        `response_body "${rule.responseBody}" is not a field of ${method.output.typeName}`,
      );
    }
  }
  return {
    httpMethod,
    template,
    method,
    body: rule.body,
    responseBody: rule.responseBody,
    bodyField,
    responseBodyField,
    pathFields,
    download: downloadFieldsOf(method),
  };
}

/** The fields of a method's download option, checked: undefined for a method without one. */
function downloadFieldsOf(method: DescMethod): DownloadFields | undefined {
  if (!hasOption(method, download)) return undefined;
  const fail = (problem: string) => new Error(`download option of ${rpcName(method)}: ${problem}`);
  if (
    method.methodKind !== "server_streaming" ||
    method.output.typeName !== "google.api.HttpBody"
  ) {
    throw fail("the RPC must be server streaming of google.api.HttpBody");
  }
  const policy = getOption(method, download);
  const fieldOf = (name: string, role: string): DescField => {
    const field = method.input.fields.find((f) => f.name === name);
    if (field === undefined) {
      throw fail(`${role} "${name}" is not a field of ${method.input.typeName}`);
    }
    if (field.fieldKind !== "scalar" || !signed64.has(field.scalar)) {
      throw fail(`${role} "${name}" must be a singular int64 field`);
    }
    return field;
  };
  return {
    offset: fieldOf(policy.offsetField, "offset_field"),
    length: fieldOf(policy.lengthField, "length_field"),
  };
}

const signed64: ReadonlySet<ScalarType> = new Set([
  ScalarType.INT64,
  ScalarType.SINT64,
  ScalarType.SFIXED64,
]);

function isBytes(field: DescField | undefined): boolean {
  return field?.fieldKind === "scalar" && field.scalar === ScalarType.BYTES;
}

/**
 * Whether `route` serves `httpMethod`: its own method, any for a `*` route, and HEAD wherever
 * GET is served (RFC 9110 §9.3.2: the GET's status and headers, without its body).
 */
function accepts(route: Route, httpMethod: string): boolean {
  return (
    route.httpMethod === httpMethod ||
    route.httpMethod === "*" ||
    (httpMethod === "HEAD" && route.httpMethod === "GET")
  );
}

/** The methods `route` serves, as an Allow header lists them: GET comes with HEAD. */
export function methodsOf(route: Route): string[] {
  return route.httpMethod === "GET" ? ["GET", "HEAD"] : [route.httpMethod];
}

function patternOf(method: DescMethod, rule: HttpRule): { httpMethod: string; path: string } {
  const { pattern } = rule;
  switch (pattern.case) {
    case "get":
    case "put":
    case "post":
    case "delete":
    case "patch":
      return { httpMethod: pattern.case.toUpperCase(), path: pattern.value };
    case "custom":
      if (pattern.value.kind === "") throw ruleError(method, "custom pattern without kind");
      return { httpMethod: pattern.value.kind, path: pattern.value.path };
    case undefined:
      throw ruleError(method, "rule without pattern (get, put, post, delete, patch or custom)");
  }
}

// A variable walks singular message fields to a singular field whose value has a text form.
function resolveVariable(
  method: DescMethod,
  template: PathTemplate,
  fieldPath: string,
): DescField[] {
  const chain: DescField[] = [];
  let message: DescMessage = method.input;
  const names = fieldPath.split(".");
  for (const [i, name] of names.entries()) {
    const field = message.fields.find((f) => f.name === name);
    const where = `path template "${template.source}" binds "${fieldPath}"`;
    if (field === undefined) {
      throw ruleError(method, `${where}, but ${message.typeName} has no field "${name}"`);
    }
    if (field.fieldKind === "list" || field.fieldKind === "map") {
      throw ruleError(method, `${where}, but "${field.name}" is a ${field.fieldKind} field`);
    }
    chain.push(field);
    if (i === names.length - 1) {
      if (textTypeOf(field) === undefined) {
        throw ruleError(
          method,
          `${where}, but ${field.message?.typeName} cannot be read from text`,
        );
      }
      break;
    }
    if (field.fieldKind !== "message" || field.message.typeName.startsWith("google.protobuf.")) {
      throw ruleError(method, `${where}, but "${field.name}" is not a message with fields`);
    }
    message = field.message;
  }
  return chain;
}

function rejectAmbiguous(routes: readonly Route[]): void {
  const seen = new Map<string, Route>();
  for (const route of routes) {
    const key = `${route.httpMethod} ${route.template.shape}`;
    const other = seen.get(key);
    if (other !== undefined) {
      throw new Error(
        `ambiguous HTTP routes: ${describe(other)} and ${describe(route)} match the same ` +
          "requests; change one of the templates",
      );
    }
    seen.set(key, route);
  }
}

function describe(route: Route): string {
  return `${route.httpMethod} ${route.template.source} (${rpcName(route.method)})`;
}

// Most specific first: more literal segments, then no "**", then fewer wildcards, then a verb,
// then literals earlier in the path, then a named HTTP method over "*"; ties keep declaration
// order (the sort is stable).
function compareSpecificity(a: Route, b: Route): number {
  const ta = a.template;
  const tb = b.template;
  return (
    tb.literalCount - ta.literalCount ||
    Number(ta.hasDeepWildcard) - Number(tb.hasDeepWildcard) ||
    ta.segments.length - ta.literalCount - (tb.segments.length - tb.literalCount) ||
    Number(ta.verb === undefined) - Number(tb.verb === undefined) ||
    compareLiteralPositions(ta, tb) ||
    Number(a.httpMethod === "*") - Number(b.httpMethod === "*")
  );
}

function compareLiteralPositions(a: PathTemplate, b: PathTemplate): number {
  const n = Math.min(a.segments.length, b.segments.length);
  for (let i = 0; i < n; i++) {
    const la = a.segments[i]?.kind === "literal";
    const lb = b.segments[i]?.kind === "literal";
    if (la !== lb) return la ? -1 : 1;
  }
  return 0;
}

function ruleError(method: DescMethod, problem: string): Error {
  return new Error(`google.api.http of ${rpcName(method)}: ${problem}`);
}
