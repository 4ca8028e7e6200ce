import { Code, ConnectError } from "@connectrpc/connect";

const uuidPattern = /^[\da-f]{8}(?:-[\da-f]{4}){3}-[\da-f]{12}$/i;

/**
 * Reads an id argument that must be a UUID, lower-cased. A malformed one is InvalidArgument
 * naming the field, never NotFound: the caller has a bug to fix, not a missing object.
 */
export function parseUuid(value: string, field: string): string {
  if (value === "") throw new ConnectError(`${field} is required`, Code.InvalidArgument);
  if (!uuidPattern.test(value)) {
    throw new ConnectError(
      `${field} must be a UUID (got "${value.slice(0, 40)}")`,
      Code.InvalidArgument,
    );
  }
  return value.toLowerCase();
}
