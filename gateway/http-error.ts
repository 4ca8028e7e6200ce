import { create, toBinary } from "@bufbuild/protobuf";
import { Code, type ConnectError } from "@connectrpc/connect";
import type { NodeResponse } from "../kit/node-http.ts";

// The google.rpc mapping (google/rpc/code.proto), as grpc-gateway and Envoy apply it.
const statusByCode: Record<Code, number> = {
  [Code.Canceled]: 499,
  [Code.Unknown]: 500,
  [Code.InvalidArgument]: 400,
  [Code.DeadlineExceeded]: 504,
  [Code.NotFound]: 404,
  [Code.AlreadyExists]: 409,
  [Code.PermissionDenied]: 403,
  [Code.ResourceExhausted]: 429,
  [Code.FailedPrecondition]: 400,
  [Code.Aborted]: 409,
  [Code.OutOfRange]: 400,
  [Code.Unimplemented]: 501,
  [Code.Internal]: 500,
  [Code.Unavailable]: 503,
  [Code.DataLoss]: 500,
  [Code.Unauthenticated]: 401,
};

/** The HTTP status a Connect code maps to (google.rpc mapping). */
export function httpStatusOf(code: Code): number {
  return statusByCode[code] ?? 500;
}

/** One entry of the JSON error body's `details`: an Any in its JSON form. */
export interface ErrorDetailJson {
  readonly "@type": string;
  /** The detail message in binary, base64: the gateway has no registry to decode it. */
  readonly value: string;
  readonly debug?: unknown;
}

/** The JSON body of every gateway error: google.rpc.Status with a numeric code. */
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

/**
 * Writes a JSON error response. `status` overrides the mapped status for HTTP-level problems
 * that have a more precise status than their code (405, 413, 415).
 */
export function sendError(
  res: NodeResponse,
  err: ConnectError,
  options: { status?: number; headers?: Record<string, string> } = {},
): void {
  const status = options.status ?? httpStatusOf(err.code);
  const body = JSON.stringify(errorBodyOf(err));
  res.writeHead(status, {
    ...options.headers,
    "content-type": "application/json",
    "cache-control": "no-store",
    "content-length": String(Buffer.byteLength(body)),
  });
  res.end(body);
}
