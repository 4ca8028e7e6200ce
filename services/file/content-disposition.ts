import { Code, ConnectError } from "@connectrpc/connect";

/** The longest stored filename, in bytes of UTF-8: what most file systems allow for one name. */
export const maxFilenameBytes = 255;

// Control characters (C0, DEL, C1) and the bidirectional controls, which let a name such as
// "invoice<U+202E>fdp.exe" display as "invoiceexe.pdf".
const unsafeCharacters = /[\p{Cc}\u200e\u200f\u202a-\u202e\u2066-\u2069]/gu;
const directories = /^.*[/\\]/s;

// Quotes and backslashes would end or escape the quoted string; "%" followed by hex digits is
// decoded by some user agents (RFC 6266 appendix D). Everything outside printable ASCII goes too.
const notFallbackSafe = /[^\x20-\x7e]|["\\%]/gu;
const combiningMarks = /\p{M}/gu;
// RFC 8187 §3.2.1 attr-char that encodeURIComponent leaves as they are.
const notAttrChar = /['()*]/g;

/**
 * The name of an uploaded file as it is stored: without directories (either slash), control
 * characters and surrounding white space, cut to maxFilenameBytes without splitting a
 * character. InvalidArgument when no name is left.
 */
export function sanitizeFilename(name: string): string {
  if (name.trim() === "") throw new ConnectError("filename is required", Code.InvalidArgument);
  const cleaned = name.toWellFormed().replace(directories, "").replace(unsafeCharacters, "").trim();
  // encodeInto writes whole characters only, and says how much of the string they took.
  const { read } = new TextEncoder().encodeInto(cleaned, new Uint8Array(maxFilenameBytes));
  const stored = cleaned.slice(0, read).trimEnd();
  if (stored === "" || stored === "." || stored === "..") {
    throw new ConnectError(
      "filename has no name left once directories and control characters are removed",
      Code.InvalidArgument,
    );
  }
  return stored;
}

/**
 * The Content-Disposition of a download (RFC 6266): inline for the types a browser shows
 * without running anything, attachment for all else; the filename both as a quoted ASCII
 * fallback and, exactly, in UTF-8 (RFC 8187).
 */
export function contentDispositionOf(filename: string, contentType: string): string {
  const disposition = displaysSafely(contentType) ? "inline" : "attachment";
  return `${disposition}; filename="${asciiFallback(filename)}"; filename*=UTF-8''${extValue(filename)}`;
}

// An allow-list, so that anything unknown is downloaded. XML of any kind (SVG, XHTML, feeds)
// can carry script or be rendered as a page. PDF is downloaded too: a browser's PDF viewer runs
// the document's scripts and forms, and how well that is isolated from the page's origin depends
// on the browser. Plain text is safe because downloads are sent with nosniff.
function displaysSafely(contentType: string): boolean {
  const essence = (contentType.split(";", 1)[0] ?? "").trim().toLowerCase();
  if (essence.endsWith("/xml") || essence.endsWith("+xml")) return false;
  const [type] = essence.split("/", 1);
  return type === "image" || type === "audio" || type === "video" || essence === "text/plain";
}

// Accented letters lose their accents ("é" is "e" plus a combining mark once decomposed);
// anything else outside the safe set becomes "_".
function asciiFallback(filename: string): string {
  return filename.normalize("NFKD").replace(combiningMarks, "").replace(notFallbackSafe, "_");
}

function extValue(filename: string): string {
  return encodeURIComponent(filename.toWellFormed()).replace(
    notAttrChar,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
}
