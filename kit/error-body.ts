import { create, toBinary } from "@bufbuild/protobuf";
import type { ConnectError } from "@connectrpc/connect";

/** One entry of the JSON error body's `details`: an Any in its JSON form. */
export interface ErrorDetailJson {
  readonly "@type": string;
  /** The detail message in binary, base64: a JSON error body has no registry to decode it. */
  readonly value: string;
  readonly debug?: unknown;
}

/**
 * The JSON body of every HTTP-level error a protomesh process answers (the gateway's, and
 * the HTTP/1.1 parser's): google.rpc.Status with a numeric code.
 */
export interface ErrorBody {
  readonly code: number;
  readonly message: string;
  readonly details: ErrorDetailJson[];
}

/** The JSON error body of a ConnectError; the cause stays out (it belongs in the log). */
export function errorBodyOf(err: ConnectError): ErrorBody {
  const details = err.details.map((d): ErrorDetailJson => {
    if ("desc" in d) {
      const bytes = toBinary(d.desc, create(d.desc, d.value));
      return {
        "@type": `type.googleapis.com/${d.desc.typeName}`,
        value: Buffer.from(bytes).toString("base64"),
      };
    }
    const entry = {
      "@type": `type.googleapis.com/${d.type}`,
      value: Buffer.from(d.value).toString("base64"),
    };
    return d.debug === undefined ? entry : { ...entry, debug: d.debug };
  });
  return { code: err.code, message: err.rawMessage, details };
}
