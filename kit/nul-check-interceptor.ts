import { type DescField, type DescMessage, ScalarType } from "@bufbuild/protobuf";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";

/**
 * Creates the interceptor that refuses, as InvalidArgument naming the field, a request with a
 * NUL character in any of its strings: PostgreSQL text cannot hold one, and the database's
 * refusal would otherwise surface as an internal error. Streamed requests are checked message
 * by message.
 */
export function createNulCheckInterceptor(): Interceptor {
  return (next) => async (req) => {
    const schema = req.method.input;
    if (!req.stream) {
      refuseNul(schema, req.message);
      return next(req);
    }
    const messages = req.message;
    async function* checked() {
      for await (const message of messages) {
        refuseNul(schema, message);
        yield message;
      }
    }
    return next({ ...req, message: checked() });
  };
}

/** Throws InvalidArgument naming the first string field of `message` that holds a NUL. */
export function refuseNul(schema: DescMessage, message: object): void {
  const path = nulFieldOf(schema, message as Record<string, unknown>, "");
  if (path !== undefined) {
    throw new ConnectError(`${path}: must not contain NUL characters`, Code.InvalidArgument);
  }
}

/** The path of the first string in `message` that holds a NUL ("task.tags[1]"), if any. */
export function nulFieldOf(
  schema: DescMessage,
  message: Record<string, unknown>,
  prefix: string,
): string | undefined {
  for (const member of schema.members) {
    let field: DescField | undefined = member.kind === "field" ? member : undefined;
    let value = message[member.localName];
    if (member.kind === "oneof") {
      const selected = value as { case?: string; value?: unknown };
      field = member.fields.find((f) => f.localName === selected.case);
      value = selected.value;
    }
    if (field === undefined || value === undefined) continue;
    const found = nulIn(field, value, `${prefix}${field.name}`);
    if (found !== undefined) return found;
  }
  return undefined;
}

function nulIn(field: DescField, value: unknown, path: string): string | undefined {
  switch (field.fieldKind) {
    case "scalar":
      return isNulString(field.scalar, value) ? path : undefined;
    case "message":
      return nulFieldOf(field.message, value as Record<string, unknown>, `${path}.`);
    case "list":
      return firstOf(value as unknown[], (item, i) =>
        field.listKind === "message"
          ? nulFieldOf(field.message, item as Record<string, unknown>, `${path}[${i}].`)
          : field.listKind === "scalar" && isNulString(field.scalar, item)
            ? `${path}[${i}]`
            : undefined,
      );
    case "map":
      return firstOf(Object.entries(value as Record<string, unknown>), ([key, item]) =>
        key.includes("\0")
          ? path
          : field.mapKind === "message"
            ? nulFieldOf(field.message, item as Record<string, unknown>, `${path}[${key}].`)
            : field.mapKind === "scalar" && isNulString(field.scalar, item)
              ? `${path}[${key}]`
              : undefined,
      );
    default:
      return undefined;
  }
}

function isNulString(scalar: ScalarType, value: unknown): boolean {
  return scalar === ScalarType.STRING && typeof value === "string" && value.includes("\0");
}

function firstOf<T>(items: readonly T[], find: (item: T, index: number) => string | undefined) {
  for (const [i, item] of items.entries()) {
    const found = find(item, i);
    if (found !== undefined) return found;
  }
  return undefined;
}
