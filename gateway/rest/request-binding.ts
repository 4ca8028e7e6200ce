import type {
  DescField,
  DescMessage,
  JsonObject,
  JsonValue,
  Message,
  Registry,
} from "@bufbuild/protobuf";
import { create, fromJson } from "@bufbuild/protobuf";
import type { ReflectMessage } from "@bufbuild/protobuf/reflect";
import { reflect } from "@bufbuild/protobuf/reflect";
import type { FieldMask } from "@bufbuild/protobuf/wkt";
import { FieldMaskSchema } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import type { TextType } from "../routing/field-text.ts";
import { FieldTextError, parseFieldText, textTypeOf } from "../routing/field-text.ts";
import type { Route } from "../routing/route-table.ts";

/** Options of `bindRequest`. */
export interface BindRequestOptions {
  /** Drop unknown fields of the JSON body instead of rejecting the request. Defaults to false. */
  readonly ignoreUnknownFields?: boolean;
  /** Resolves the types of google.protobuf.Any values in the JSON body. */
  readonly registry?: Registry;
}

/**
 * Builds the request message of a route from the HTTP request: the JSON body per the rule's
 * `body`, then the path variables, then the query parameters (fields bound by neither), and on
 * PATCH a derived `update_mask`. Throws a ConnectError (InvalidArgument) saying what to fix.
 */
export function bindRequest(
  route: Route,
  bindings: ReadonlyMap<string, string>,
  query: URLSearchParams,
  body: unknown,
  options: BindRequestOptions = {},
): Message {
  const input = route.method.input;
  const root = reflect(input, bindBody(route, body, options));
  // Path variables after the body: the URL names the resource, whatever the body says.
  for (const [fieldPath, text] of bindings) {
    const chain = route.pathFields.get(fieldPath);
    if (chain === undefined) {
      throw new Error(`${fieldPath} is not a variable of ${route.template.source}`);
    }
    setText(root, chain, text, `path parameter "${fieldPath}"`);
  }
  bindQuery(route, root, query);
  const maskField = updateMaskField(input);
  if (maskField !== undefined && !root.isSet(maskField)) {
    const mask = deriveUpdateMask(route, body);
    if (mask !== undefined) root.set(maskField, reflect(FieldMaskSchema, mask));
  }
  return root.message;
}

/**
 * For a PATCH route whose body is a field of the request and whose request has a FieldMask
 * `update_mask`, the mask of the top-level fields present in the JSON body (proto names),
 * leaving out fields taken from the URL path. Undefined when the route has no such mask.
 */
export function deriveUpdateMask(route: Route, body: unknown): FieldMask | undefined {
  const bodyField = route.bodyField;
  if (route.httpMethod !== "PATCH" || bodyField?.fieldKind !== "message") return undefined;
  if (updateMaskField(route.method.input) === undefined || !isJsonObject(body)) return undefined;
  const fromPath = new Set<string>();
  for (const fieldPath of route.pathFields.keys()) {
    const [head, ...rest] = fieldPath.split(".");
    if (head === bodyField.name && rest.length > 0) fromPath.add(rest.join("."));
  }
  const paths: string[] = [];
  for (const key of Object.keys(body)) {
    const field = findField(bodyField.message, key);
    if (field !== undefined && !fromPath.has(field.name)) paths.push(field.name);
  }
  return create(FieldMaskSchema, { paths });
}

function updateMaskField(input: DescMessage): DescField | undefined {
  const field = input.fields.find((f) => f.name === "update_mask");
  return field?.fieldKind === "message" && field.message.typeName === FieldMaskSchema.typeName
    ? field
    : undefined;
}

function bindBody(route: Route, body: unknown, options: BindRequestOptions): Message {
  const input = route.method.input;
  if (route.body === "") {
    if (body !== undefined) {
      throw invalid(
        "this endpoint takes no request body; send the fields in the path and query string",
      );
    }
    return create(input);
  }
  if (body === undefined) return create(input);
  const readOptions = {
    ignoreUnknownFields: options.ignoreUnknownFields ?? false,
    ...(options.registry === undefined ? {} : { registry: options.registry }),
  };
  if (route.body === "*") {
    if (!isJsonObject(body)) throw invalid("the request body must be a JSON object");
    return parseJson(input, body as JsonObject, readOptions);
  }
  // Reading the body as the one field of an otherwise empty request message applies the JSON
  // mapping of that field, whatever its type.
  const field = route.bodyField;
  if (field === undefined) throw new Error(`body field ${route.body} was not resolved`);
  return parseJson(input, { [field.jsonName]: body as JsonValue }, readOptions);
}

function parseJson(
  input: DescMessage,
  json: JsonValue,
  options: { ignoreUnknownFields: boolean; registry?: Registry },
): Message {
  try {
    return fromJson(input, json, options);
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    throw invalid(`invalid JSON body: ${reason}`);
  }
}

function bindQuery(route: Route, root: ReflectMessage, query: URLSearchParams): void {
  const setBy = new Map<string, string>();
  for (const key of new Set(query.keys())) {
    const chain = resolveQueryKey(root.desc, key);
    const protoPath = chain.map((f) => f.name).join(".");
    const first = chain[0];
    if (route.body === "*") {
      throw invalid(
        `query parameter "${key}" is not allowed: this endpoint reads every field from the JSON body`,
      );
    }
    if (first !== undefined && first === route.bodyField) {
      throw invalid(
        `query parameter "${key}" is not allowed: "${first.name}" is read from the JSON body`,
      );
    }
    for (const fieldPath of route.pathFields.keys()) {
      if (overlaps(fieldPath, protoPath)) {
        throw invalid(
          `query parameter "${key}" is not allowed: "${fieldPath}" is taken from the URL path`,
        );
      }
    }
    const earlier = setBy.get(protoPath);
    if (earlier !== undefined) {
      throw invalid(`query parameters "${earlier}" and "${key}" both set "${protoPath}"; send one`);
    }
    setBy.set(protoPath, key);
    const values = query.getAll(key);
    const leaf = chain.at(-1);
    if (leaf?.fieldKind === "list") {
      const type = textTypeOf(leaf);
      if (type === undefined) throw new Error(`${protoPath} was checked to have a text form`);
      const list = descend(root, chain.slice(0, -1)).get(leaf);
      for (const text of values) list.add(parseText(type, text, `query parameter "${key}"`));
      continue;
    }
    if (values.length > 1) {
      throw invalid(`query parameter "${key}" is given ${values.length} times; it takes one value`);
    }
    setText(root, chain, values[0] ?? "", `query parameter "${key}"`, key, setBy);
  }
}

// Finds the fields a query key walks, by JSON (lowerCamel) or proto (snake_case) names, and
// checks that the last one can be written as text.
function resolveQueryKey(input: DescMessage, key: string): DescField[] {
  const chain: DescField[] = [];
  let message = input;
  const names = key.split(".");
  for (const [i, name] of names.entries()) {
    const field = findField(message, name);
    if (field === undefined) {
      throw invalid(`unknown query parameter "${key}": ${message.typeName} has no field "${name}"`);
    }
    chain.push(field);
    const last = i === names.length - 1;
    if (!last) {
      if (field.fieldKind !== "message" || field.message.typeName.startsWith("google.protobuf.")) {
        throw invalid(`invalid query parameter "${key}": "${name}" has no fields to set`);
      }
      message = field.message;
      continue;
    }
    if (textTypeOf(field) !== undefined) break;
    if (field.fieldKind === "message" && !field.message.typeName.startsWith("google.protobuf.")) {
      const example = field.message.fields[0];
      const hint = example === undefined ? "" : `, for example "${key}.${example.jsonName}"`;
      throw invalid(`query parameter "${key}" names a message; set its fields instead${hint}`);
    }
    throw invalid(
      `query parameter "${key}" cannot be set in the query string; send it in a request body`,
    );
  }
  return chain;
}

// Two field paths overlap when one is the other or contains it.
function overlaps(a: string, b: string): boolean {
  return a === b || a.startsWith(`${b}.`) || b.startsWith(`${a}.`);
}

function setText(
  root: ReflectMessage,
  chain: readonly DescField[],
  text: string,
  what: string,
  queryKey?: string,
  setBy?: ReadonlyMap<string, string>,
): void {
  const leaf = chain.at(-1);
  const type = leaf === undefined ? undefined : textTypeOf(leaf);
  if (leaf === undefined || type === undefined) throw new Error(`${what} cannot be set from text`);
  const parent = descend(root, chain.slice(0, -1));
  if (queryKey !== undefined && leaf.oneof !== undefined) {
    const current = parent.oneofCase(leaf.oneof);
    if (current !== undefined && current !== leaf) {
      const prefix = chain
        .slice(0, -1)
        .map((f) => `${f.name}.`)
        .join("");
      const other = setBy?.get(prefix + current.name) ?? current.name;
      throw invalid(
        `query parameter "${queryKey}" conflicts with "${other}": only one field of ` +
          `"${leaf.oneof.name}" can be set`,
      );
    }
  }
  parent.set(leaf, parseText(type, text, what));
}

function parseText(type: TextType, text: string, what: string): unknown {
  try {
    return parseFieldText(type, text);
  } catch (err) {
    if (err instanceof FieldTextError) {
      throw invalid(`invalid value "${text}" for ${what}: ${err.message}`);
    }
    throw err;
  }
}

// Walks singular message fields from the root, creating the messages that are not set yet.
function descend(root: ReflectMessage, fields: readonly DescField[]): ReflectMessage {
  let current = root;
  for (const field of fields) {
    if (field.fieldKind !== "message") throw new Error(`${field.name} is not a message field`);
    if (!current.isSet(field)) current.set(field, reflect(field.message));
    current = current.get(field);
  }
  return current;
}

function findField(message: DescMessage, name: string): DescField | undefined {
  return message.fields.find((f) => f.jsonName === name || f.name === name);
}

function isJsonObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function invalid(message: string): ConnectError {
  return new ConnectError(message, Code.InvalidArgument);
}
