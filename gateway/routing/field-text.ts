import type { DescEnum, DescField, DescMessage, Message } from "@bufbuild/protobuf";
import { create, fromJson, ScalarType } from "@bufbuild/protobuf";
import { reflect } from "@bufbuild/protobuf/reflect";
import { base64Decode } from "@bufbuild/protobuf/wire";
import {
  DurationSchema,
  FieldMaskSchema,
  isWrapperDesc,
  TimestampSchema,
} from "@bufbuild/protobuf/wkt";

/**
 * The type of a value written as text in a URL (a path variable or a query parameter): a
 * scalar, an enum, or a well-known message with a string form.
 */
export type TextType =
  | { readonly kind: "scalar"; readonly scalar: ScalarType }
  | { readonly kind: "enum"; readonly enum: DescEnum }
  | { readonly kind: "message"; readonly message: DescMessage };

/** Thrown by `parseFieldText` on a bad value; the message says what was expected. */
export class FieldTextError extends Error {
  override name = "FieldTextError";
}

const integer = /^-?\d+$/;
const uint = /^\d+$/;
const decimal = /^-?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?$/;
const base64 = /^[A-Za-z0-9+/_-]*={0,2}$/;
const ident = /^[A-Za-z_][A-Za-z0-9_]*$/;
const maxFloat = 3.4028234663852886e38;

/**
 * The text type of a field, or of the elements of a repeated field; undefined for maps and for
 * messages without a string form (which cannot appear in a URL).
 */
export function textTypeOf(field: DescField): TextType | undefined {
  switch (field.fieldKind) {
    case "scalar":
      return { kind: "scalar", scalar: field.scalar };
    case "enum":
      return { kind: "enum", enum: field.enum };
    case "message":
      return hasTextForm(field.message) ? { kind: "message", message: field.message } : undefined;
    case "list":
      switch (field.listKind) {
        case "scalar":
          return { kind: "scalar", scalar: field.scalar };
        case "enum":
          return { kind: "enum", enum: field.enum };
        case "message":
          return hasTextForm(field.message)
            ? { kind: "message", message: field.message }
            : undefined;
      }
      return undefined;
    case "map":
      return undefined;
  }
}

function hasTextForm(message: DescMessage): boolean {
  switch (message.typeName) {
    case TimestampSchema.typeName:
    case DurationSchema.typeName:
    case FieldMaskSchema.typeName:
      return true;
    default:
      return isWrapperDesc(message);
  }
}

/** Says in words what text a value of the type must be, for error messages. */
export function describeTextType(type: TextType): string {
  switch (type.kind) {
    case "scalar":
      return describeScalar(type.scalar);
    case "enum": {
      const names = type.enum.values.map((v) => v.name);
      return `one of ${names.join(", ")} (or its number)`;
    }
    case "message":
      switch (type.message.typeName) {
        case TimestampSchema.typeName:
          return "an RFC 3339 timestamp such as 2024-05-01T12:00:00Z";
        case DurationSchema.typeName:
          return 'a duration in seconds with an "s" suffix such as 1.5s';
        case FieldMaskSchema.typeName:
          return "comma-separated field paths such as displayName,dueTime";
      }
      return describeWrapped(type.message);
  }
}

function describeWrapped(wrapper: DescMessage): string {
  const value = wrapper.fields[0];
  return value?.fieldKind === "scalar" ? describeScalar(value.scalar) : wrapper.typeName;
}

function describeScalar(scalar: ScalarType): string {
  switch (scalar) {
    case ScalarType.STRING:
      return "a string";
    case ScalarType.BYTES:
      return "base64 or base64url bytes";
    case ScalarType.BOOL:
      return "true or false";
    case ScalarType.INT32:
    case ScalarType.SINT32:
    case ScalarType.SFIXED32:
      return "a 32-bit integer";
    case ScalarType.UINT32:
    case ScalarType.FIXED32:
      return "an unsigned 32-bit integer";
    case ScalarType.INT64:
    case ScalarType.SINT64:
    case ScalarType.SFIXED64:
      return "a 64-bit integer";
    case ScalarType.UINT64:
    case ScalarType.FIXED64:
      return "an unsigned 64-bit integer";
    case ScalarType.FLOAT:
    case ScalarType.DOUBLE:
      return "a number";
  }
}

/**
 * Parses the text of a URL value into the form that `ReflectMessage.set` and `ReflectList.add`
 * expect: a number, bigint, boolean, string, Uint8Array, enum number, or a ReflectMessage for
 * well-known types. Throws a `FieldTextError` on a bad value.
 */
export function parseFieldText(type: TextType, text: string): unknown {
  switch (type.kind) {
    case "scalar":
      return parseScalar(type.scalar, text);
    case "enum":
      return parseEnum(type.enum, text);
    case "message":
      return reflect(type.message, parseMessage(type.message, text));
  }
}

function parseEnum(desc: DescEnum, text: string): number {
  const byName = desc.values.find((v) => v.name === text);
  if (byName) return byName.number;
  if (integer.test(text)) {
    const byNumber = desc.values.find((v) => v.number === Number(text));
    if (byNumber) return byNumber.number;
  }
  return fail({ kind: "enum", enum: desc });
}

function parseMessage(desc: DescMessage, text: string): Message {
  switch (desc.typeName) {
    case TimestampSchema.typeName:
    case DurationSchema.typeName:
      try {
        return fromJson(desc, text);
      } catch {
        return fail({ kind: "message", message: desc });
      }
    case FieldMaskSchema.typeName:
      return create(FieldMaskSchema, { paths: parseFieldMaskPaths(text) });
  }
  // A wrapper (google.protobuf.Int32Value etc.) reads as its single "value" field.
  const valueField = desc.fields[0];
  if (valueField?.fieldKind !== "scalar") return fail({ kind: "message", message: desc });
  const wrapper = reflect(desc);
  wrapper.set(valueField, parseScalar(valueField.scalar, text));
  return wrapper.message;
}

function parseFieldMaskPaths(text: string): string[] {
  if (text.trim() === "") return [];
  return text.split(",").map((path) => {
    const parts = path.trim().split(".");
    if (!parts.every((p) => ident.test(p))) {
      fail({ kind: "message", message: FieldMaskSchema });
    }
    // lowerCamel (JSON) names become proto names; snake_case names are kept.
    return parts.map((p) => p.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)).join(".");
  });
}

function parseScalar(scalar: ScalarType, text: string): unknown {
  switch (scalar) {
    case ScalarType.STRING:
      return text;
    case ScalarType.BYTES:
      if (!base64.test(text) || text.replace(/=+$/, "").length % 4 === 1) break;
      return base64Decode(text);
    case ScalarType.BOOL:
      if (text === "true") return true;
      if (text === "false") return false;
      break;
    case ScalarType.INT32:
    case ScalarType.SINT32:
    case ScalarType.SFIXED32:
      if (integer.test(text) && inRange(BigInt(text), -(2n ** 31n), 2n ** 31n - 1n)) {
        return Number(text);
      }
      break;
    case ScalarType.UINT32:
    case ScalarType.FIXED32:
      if (uint.test(text) && inRange(BigInt(text), 0n, 2n ** 32n - 1n)) return Number(text);
      break;
    case ScalarType.INT64:
    case ScalarType.SINT64:
    case ScalarType.SFIXED64:
      if (integer.test(text) && inRange(BigInt(text), -(2n ** 63n), 2n ** 63n - 1n)) {
        return BigInt(text);
      }
      break;
    case ScalarType.UINT64:
    case ScalarType.FIXED64:
      if (uint.test(text) && inRange(BigInt(text), 0n, 2n ** 64n - 1n)) return BigInt(text);
      break;
    case ScalarType.FLOAT:
    case ScalarType.DOUBLE: {
      const n = parseNumber(text);
      if (n === undefined) break;
      if (scalar === ScalarType.FLOAT && Number.isFinite(n) && Math.abs(n) > maxFloat) break;
      return n;
    }
  }
  return fail({ kind: "scalar", scalar });
}

function parseNumber(text: string): number | undefined {
  if (text === "NaN") return Number.NaN;
  if (text === "Infinity") return Number.POSITIVE_INFINITY;
  if (text === "-Infinity") return Number.NEGATIVE_INFINITY;
  if (!decimal.test(text)) return undefined;
  const n = Number(text);
  return Number.isFinite(n) ? n : undefined;
}

function inRange(n: bigint, min: bigint, max: bigint): boolean {
  return n >= min && n <= max;
}

function fail(type: TextType): never {
  throw new FieldTextError(`expected ${describeTextType(type)}`);
}
