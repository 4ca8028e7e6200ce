import { Code, ConnectError } from "@connectrpc/connect";

const invalid = (message: string) => new ConnectError(message, Code.InvalidArgument);

// Deliberately loose (RFC 5321 allows far more than any regex captures): one "@", no spaces,
// a dot in the domain. The verification mail is the real check.
const emailPattern = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;

/** Trims and lower-cases an email address; InvalidArgument if it cannot be one. */
export function normalizeEmail(email: string): string {
  const normalized = email.trim().toLowerCase();
  if (normalized === "") throw invalid("email is required");
  if (normalized.length > 254) throw invalid("email must be at most 254 characters");
  if (!emailPattern.test(normalized)) throw invalid(`email "${normalized}" is not a valid address`);
  return normalized;
}

/** Checks a new password's length, counted in characters (code points), not bytes. */
export function checkPassword(password: string): void {
  const length = [...password].length;
  if (length < 8) throw invalid("password must be at least 8 characters");
  if (length > 128) throw invalid("password must be at most 128 characters");
}

/** Trims a display name and checks it is 1 to 100 characters. */
export function normalizeDisplayName(name: string): string {
  const trimmed = name.trim();
  if (trimmed === "") throw invalid("display_name is required");
  if ([...trimmed].length > 100) throw invalid("display_name must be at most 100 characters");
  return trimmed;
}
