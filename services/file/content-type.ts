import { Code, ConnectError } from "@connectrpc/connect";
import { fileTypeFromBuffer } from "file-type";

/**
 * How many bytes from the start of a file resolveContentType reads: file-type's sample size,
 * within which it detects the formats it knows (it does not export the figure in its types).
 */
export const contentTypeHeadBytes = 4100;

/** The media type of content that is neither declared nor detected. */
export const defaultContentType = "application/octet-stream";

// RFC 6838 §4.2 bounds type and subtype names to 127 characters each; parameters are few.
const maxDeclaredLength = 255;
// RFC 9110 §8.3.1: type "/" subtype *( OWS ";" OWS name "=" ( token / quoted-string ) ), the
// quoted string restricted to ASCII.
const token = "[!#$%&'*+.^_`|~0-9A-Za-z-]+";
const quoted = '"(?:[\\t\\x20\\x21\\x23-\\x5b\\x5d-\\x7e]|\\\\[\\t\\x20-\\x7e])*"';
const mediaType = new RegExp(
  `^(${token}/${token})((?:[ \\t]*;[ \\t]*${token}=(?:${token}|${quoted}))*)$`,
);

// SVG is XML text: file-type does not detect it, or sees only generic XML.
const svg = "image/svg+xml";
const genericXml = "application/xml";

/** A declared media type, checked: its lower-cased type/subtype and the whole, as declared. */
interface Declared {
  readonly essence: string;
  readonly value: string;
}

/**
 * The media type of an upload from the first contentTypeHeadBytes of its content and the type its
 * client declared. The detected type wins; undetectable text formats keep the declared one; a
 * declared image type that the content contradicts, or a malformed declared type, is
 * InvalidArgument.
 */
export async function resolveContentType(
  head: Uint8Array,
  declared: string | undefined,
): Promise<string> {
  const claimed = parseDeclared(declared);
  const detected = (await fileTypeFromBuffer(head))?.mime;
  if (claimed === undefined) return detected ?? defaultContentType;
  if (keepsDeclared(claimed.essence, detected)) return claimed.value;
  if (detected === undefined || claimed.essence.startsWith("image/")) {
    // A declared image type is refused even when the content is another image: the client
    // would render or validate the file as the type it named, and the contract promises that a
    // contradicted image type fails rather than being silently replaced.
    throw new ConnectError(
      `content_type "${claimed.value}" does not match the content, which is ${
        detected === undefined ? "of no type that can be detected" : `"${detected}"`
      }`,
      Code.InvalidArgument,
    );
  }
  return detected;
}

function parseDeclared(declared: string | undefined): Declared | undefined {
  const value = declared?.trim() ?? "";
  if (value === "") return undefined;
  const match = value.length <= maxDeclaredLength ? mediaType.exec(value) : null;
  if (match === null) {
    throw new ConnectError(
      `content_type must be a media type such as "text/plain; charset=utf-8" of at most ${maxDeclaredLength} characters`,
      Code.InvalidArgument,
    );
  }
  const essence = (match[1] ?? "").toLowerCase();
  return { essence, value: `${essence}${match[2] ?? ""}` };
}

// Whether the declared type describes the content at least as well as detection: the same type
// (its parameters, such as a charset, kept), an XML dialect of detected XML, or a text format
// that cannot be detected. Images other than SVG are always detectable.
function keepsDeclared(essence: string, detected: string | undefined): boolean {
  if (detected === undefined) return essence === svg || !essence.startsWith("image/");
  if (detected === genericXml) return essence.endsWith("/xml") || essence.endsWith("+xml");
  return detected === essence;
}
