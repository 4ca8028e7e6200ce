import type { DescEnum, DescField, DescMessage } from "@bufbuild/protobuf";
import { ScalarType } from "@bufbuild/protobuf";
import { isWrapperDesc } from "@bufbuild/protobuf/wkt";

/** A JSON Schema (draft 2020-12, the dialect of OpenAPI 3.1) as a plain JSON object. */
export type JsonSchema = { readonly [keyword: string]: unknown };

/**
 * The JSON Schemas of messages and enums in the proto3 JSON mapping, the form the gateway reads
 * and writes. Messages and enums become named components referenced with `$ref` (so recursive
 * messages terminate); well-known types are inlined in their JSON forms.
 */
export interface SchemaSet {
  /** The schema of a message: a `$ref` to its component, or the inline form of a well-known type. */
  message(desc: DescMessage): JsonSchema;
  /** The schema of a field's value: repeated fields are arrays, maps objects. */
  field(field: DescField): JsonSchema;
  /** What the contract says of a field (its comment), and of its one-of if it is in one. */
  describe(field: DescField): string | undefined;
  /** Every component referenced so far, by full proto name. */
  readonly components: Readonly<Record<string, JsonSchema>>;
}

/** Where `$ref`s of a schema set point: `#/components/schemas/<full proto name>`. */
export const componentsRef = "#/components/schemas/";

/**
 * Creates an empty set; components are added as messages and fields are looked up, described
 * with the contracts' comments (by full name) when there are any.
 */
export function createSchemaSet(comments: ReadonlyMap<string, string> = new Map()): SchemaSet {
  const components: Record<string, JsonSchema> = {};
  const described = (name: string): { description?: string } => {
    const text = comments.get(name);
    return text === undefined ? {} : { description: text };
  };

  function message(desc: DescMessage): JsonSchema {
    const wellKnown = wellKnownSchema(desc);
    if (wellKnown !== undefined) return wellKnown;
    if (!(desc.typeName in components)) {
      // Registered before its fields are walked, so a recursive message refers to itself.
      components[desc.typeName] = {};
      components[desc.typeName] = messageComponent(desc);
    }
    return { $ref: componentsRef + desc.typeName };
  }

  function enumRef(desc: DescEnum): JsonSchema {
    // google.protobuf.NullValue is written as JSON null.
    if (desc.typeName === "google.protobuf.NullValue") return { type: "null" };
    components[desc.typeName] ??= {
      type: "string",
      enum: desc.values.map((v) => v.name),
      ...described(desc.typeName),
    };
    return { $ref: componentsRef + desc.typeName };
  }

  function field(f: DescField): JsonSchema {
    switch (f.fieldKind) {
      case "scalar":
        return scalarSchema(f.scalar);
      case "enum":
        return enumRef(f.enum);
      case "message":
        return message(f.message);
      case "list":
        return { type: "array", items: elementOf(f) };
      case "map":
        return {
          type: "object",
          ...mapKeyConstraint(f.mapKey),
          additionalProperties: elementOf(f),
        };
    }
  }

  // The schema of one element of a repeated field, or of one value of a map.
  function elementOf(f: DescField & { fieldKind: "list" | "map" }): JsonSchema {
    if (f.fieldKind === "list") {
      if (f.listKind === "scalar") return scalarSchema(f.scalar);
      return f.listKind === "enum" ? enumRef(f.enum) : message(f.message);
    }
    if (f.mapKind === "scalar") return scalarSchema(f.scalar);
    return f.mapKind === "enum" ? enumRef(f.enum) : message(f.message);
  }

  function describe(f: DescField): string | undefined {
    const notes = [comments.get(`${f.parent.typeName}.${f.name}`)];
    if (f.oneof !== undefined) {
      const others = f.oneof.fields.map((o) => o.jsonName).join(", ");
      notes.push(`Member of the one-of "${f.oneof.name}": set at most one of ${others}.`);
    }
    const text = notes.filter((n) => n !== undefined).join("\n\n");
    return text === "" ? undefined : text;
  }

  function messageComponent(desc: DescMessage): JsonSchema {
    const properties: Record<string, JsonSchema> = {};
    for (const f of desc.fields) {
      const description = describe(f);
      properties[f.jsonName] = {
        ...field(f),
        ...(description === undefined ? {} : { description }),
      };
    }
    return { type: "object", properties, ...described(desc.typeName) };
  }

  return { message, field, describe, components };
}

/** The JSON form of a scalar: 64-bit integers as decimal strings, bytes as base64. */
export function scalarSchema(scalar: ScalarType): JsonSchema {
  switch (scalar) {
    case ScalarType.STRING:
      return { type: "string" };
    case ScalarType.BOOL:
      return { type: "boolean" };
    case ScalarType.BYTES:
      return { type: "string", format: "byte", contentEncoding: "base64" };
    case ScalarType.INT32:
    case ScalarType.SINT32:
    case ScalarType.SFIXED32:
      return { type: "integer", format: "int32" };
    case ScalarType.UINT32:
    case ScalarType.FIXED32:
      return { type: "integer", format: "uint32", minimum: 0 };
    case ScalarType.INT64:
    case ScalarType.SINT64:
    case ScalarType.SFIXED64:
      return { type: "string", format: "int64", pattern: "^-?[0-9]+$" };
    case ScalarType.UINT64:
    case ScalarType.FIXED64:
      return { type: "string", format: "uint64", pattern: "^[0-9]+$" };
    case ScalarType.FLOAT:
      return { type: "number", format: "float" };
    case ScalarType.DOUBLE:
      return { type: "number", format: "double" };
  }
}

// JSON object keys are strings; the key's type shows in what the string may be.
function mapKeyConstraint(key: ScalarType): JsonSchema {
  switch (key) {
    case ScalarType.STRING:
      return {};
    case ScalarType.BOOL:
      return { propertyNames: { enum: ["true", "false"] } };
    default:
      return { propertyNames: { pattern: "^-?[0-9]+$" } };
  }
}

function wellKnownSchema(desc: DescMessage): JsonSchema | undefined {
  switch (desc.typeName) {
    case "google.protobuf.Timestamp":
      return { type: "string", format: "date-time" };
    case "google.protobuf.Duration":
      return {
        type: "string",
        format: "google-duration",
        pattern: "^-?[0-9]+(\\.[0-9]{1,9})?s$",
        description: 'Seconds with an "s" suffix, for example "1.5s".',
      };
    case "google.protobuf.FieldMask":
      return {
        type: "string",
        format: "google-fieldmask",
        description: 'Comma-separated field paths, for example "displayName,dueTime".',
      };
    case "google.protobuf.Struct":
      return { type: "object", additionalProperties: true };
    case "google.protobuf.Value":
      return { description: "Any JSON value." };
    case "google.protobuf.ListValue":
      return { type: "array", items: {} };
    case "google.protobuf.Empty":
      return { type: "object", properties: {} };
    case "google.protobuf.Any":
      return {
        type: "object",
        properties: { "@type": { type: "string" } },
        required: ["@type"],
        additionalProperties: true,
        description:
          'A message of the type named by "@type", with its fields beside "@type" (or in ' +
          '"value" for a well-known type).',
      };
  }
  if (!isWrapperDesc(desc)) return undefined;
  // A wrapper is written as its wrapped value.
  const value = desc.fields[0];
  return value?.fieldKind === "scalar" ? scalarSchema(value.scalar) : undefined;
}
