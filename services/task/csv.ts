import { create } from "@bufbuild/protobuf";
import { type HttpBody, HttpBodySchema } from "../../gen/google/api/httpbody_pb.ts";

/** The content type of the CSV exports: RFC 4180 text, UTF-8. */
export const csvContentType = "text/csv; charset=utf-8";

// RFC 4180 §2.6: a field holding a comma, a quote or a line break is enclosed in quotes.
const needsQuotes = /[",\r\n]/;
// A spreadsheet runs a cell that starts with one of these as a formula (OWASP "CSV
// injection"); user-written text is defused with a leading apostrophe, which spreadsheets
// show as text and do not display.
const formulaStart = /^[=+\-@\t\r]/;

/** One CSV field: quoted when RFC 4180 requires it, with quotes doubled (§2.7). */
export function csvField(value: string): string {
  return needsQuotes.test(value) ? `"${value.replaceAll('"', '""')}"` : value;
}

/** A field of text that users wrote: like csvField, but never read as a formula. */
export function csvText(value: string): string {
  return csvField(formulaStart.test(value) ? `'${value}` : value);
}

/** One CSV record of already-encoded fields, ended by CRLF (RFC 4180 §2.1). */
export function csvRecord(fields: readonly string[]): string {
  return `${fields.join(",")}\r\n`;
}

/**
 * Streams CSV as google.api.HttpBody messages: the header row, then the records of each batch
 * the source yields, gathered into chunks of about `chunkChars` so that no message nears the
 * message size limit and memory holds one batch at a time. The first message names the
 * content type.
 */
export async function* streamCsv(
  header: readonly string[],
  batches: AsyncIterable<readonly string[]>,
  chunkChars = 64 * 1024,
): AsyncGenerator<HttpBody> {
  let first = true;
  let chunk = csvRecord(header.map(csvField));
  const message = (data: string) => {
    const body = create(HttpBodySchema, {
      contentType: first ? csvContentType : "",
      data: Buffer.from(data, "utf8"),
    });
    first = false;
    return body;
  };
  for await (const records of batches) {
    for (const record of records) {
      chunk += record;
      if (chunk.length >= chunkChars) {
        yield message(chunk);
        chunk = "";
      }
    }
  }
  if (chunk !== "" || first) yield message(chunk);
}
