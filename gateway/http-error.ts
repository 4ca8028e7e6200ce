import { Code, type ConnectError } from "@connectrpc/connect";
import { errorBodyOf } from "../kit/error-body.ts";
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
