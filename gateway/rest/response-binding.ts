import type { JsonObject, JsonValue, Message, Registry } from "@bufbuild/protobuf";
import { create, toJson } from "@bufbuild/protobuf";
import { FeatureSet_FieldPresence } from "@bufbuild/protobuf/wkt";
import type { Route } from "../routing/route-table.ts";

/** Options of `bindResponse`. */
export interface BindResponseOptions {
  /** Resolves the types of google.protobuf.Any values in the response. */
  readonly registry?: Registry;
}

/**
 * The JSON body of an HTTP response: the response field named by the rule's `response_body`,
 * or else the whole message, in the protobuf JSON mapping (lowerCamel names, enums by name,
 * 64-bit integers as strings, fields with default values left out).
 */
export function bindResponse(
  route: Route,
  message: Message,
  options: BindResponseOptions = {},
): JsonValue {
  const output = route.method.output;
  const writeOptions = {
    useProtoFieldName: false,
    ...(options.registry === undefined ? {} : { registry: options.registry }),
  };
  const json = toJson(output, message, writeOptions);
  const field = route.responseBodyField;
  if (field === undefined) return json;
  const value = (json as JsonObject)[field.jsonName];
  if (value !== undefined) return value;
  // The JSON mapping leaves out default values; a body still needs one.
  switch (field.fieldKind) {
    case "list":
      return [];
    case "map":
      return {};
    case "message":
      return null;
    default: {
      if (field.presence !== FeatureSet_FieldPresence.IMPLICIT) return null;
      const zero = toJson(output, create(output), { ...writeOptions, alwaysEmitImplicit: true });
      return (zero as JsonObject)[field.jsonName] ?? null;
    }
  }
}
