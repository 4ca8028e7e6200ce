import type { OpenApiContent, OpenApiParameter, OpenApiResponse } from "./openapi.ts";

// The OpenAPI side of a ranged download (gateway/rest/download.ts): its request headers, and its
// answers with the headers that describe the bytes.

const text = { type: "string" } as const;
const length = { type: "integer", minimum: 0 } as const;
const binary: OpenApiContent = { "*/*": { schema: { type: "string", format: "binary" } } };

/** The request headers an operation with the download option reads. */
export const downloadParameters: readonly OpenApiParameter[] = [
  {
    name: "Range",
    in: "header",
    description:
      "One byte range: `bytes=a-b`, `bytes=a-` or `bytes=-n` (the last n bytes). It takes the place of the offset and length parameters and the answer is 206 with that part. Another unit, several ranges or a malformed value are ignored: 200 with everything.",
    schema: text,
  },
  {
    name: "If-Range",
    in: "header",
    description:
      "With Range: the ETag or Last-Modified date of the client's copy. When the content has changed since, the answer is 200 with everything.",
    schema: text,
  },
  {
    name: "If-None-Match",
    in: "header",
    description:
      "Entity tags, or `*`: when one names the content's ETag (weak comparison), the answer is 304 without a body.",
    schema: text,
  },
];

const etag = { description: "The content's entity tag.", schema: text };
const acceptRanges = {
  description: "Byte ranges can be asked for.",
  schema: { ...text, const: "bytes" },
};
const describedBytes = {
  "Content-Length": { description: "The number of bytes of the body.", schema: length },
  "Accept-Ranges": acceptRanges,
  ETag: etag,
  "Last-Modified": { description: "When the content last changed.", schema: text },
  "Content-Disposition": { description: "How a browser should present it.", schema: text },
};

/**
 * The answers of an operation with the download option besides its errors, given the content of
 * an error response; adds what the bytes are like to `notes`.
 */
export function downloadResponses(
  errorContent: OpenApiContent,
  notes: string[],
): Record<string, OpenApiResponse> {
  notes.push(
    "Ranged download: the response is the bytes of every message, with the content type of the first and their Content-Length; an error after the first bytes aborts the response, so a body shorter than its Content-Length is incomplete. A Range header selects part of the content (206); If-None-Match answers 304 when it names the ETag; HEAD answers the same headers without the body.",
  );
  return {
    "200": {
      description: "The content, or the part the offset and length parameters select.",
      headers: describedBytes,
      content: binary,
    },
    "206": {
      description: "The part the Range header selects.",
      headers: {
        ...describedBytes,
        "Content-Range": {
          description: "The part sent and the size of the whole: `bytes a-b/size`.",
          schema: text,
        },
      },
      content: binary,
    },
    "304": {
      description: "If-None-Match names the content's ETag: the client's copy is current.",
      headers: { ETag: etag, "Accept-Ranges": acceptRanges },
    },
    "416": {
      description: "The range starts at or beyond the end of the content (OUT_OF_RANGE).",
      headers: {
        "Content-Range": { description: "The size of the content: `bytes */size`.", schema: text },
        "Accept-Ranges": acceptRanges,
      },
      content: errorContent,
    },
  };
}
