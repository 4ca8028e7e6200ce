import type { IncomingHttpHeaders } from "node:http";

/**
 * How long calls may run: the default for calls that ask for nothing, and the cap. A method
 * whose contract declares a longer default than the cap (an upload of gigabytes) may run that
 * long: its declared default is its own cap.
 */
export interface DeadlinePolicy {
  readonly defaultMs: number;
  readonly maxMs: number;
  /** Per-method defaults by request path ("/pkg.Service/Method"), from the proto call option. */
  readonly methodDefaults?: ReadonlyMap<string, number>;
}

/** The longest deadline any call may get under the policy. */
export function longestDeadlineMs(policy: DeadlinePolicy): number {
  return Math.max(policy.maxMs, ...(policy.methodDefaults?.values() ?? []));
}

/** The default and the cap of one method's calls. */
function boundsOf(policy: DeadlinePolicy, path: string): { fallback: number; cap: number } {
  const declared = policy.methodDefaults?.get(path);
  return {
    fallback: Math.min(declared ?? policy.defaultMs, Math.max(policy.maxMs, declared ?? 0)),
    cap: Math.max(policy.maxMs, declared ?? 0),
  };
}

const grpcUnitsMs: Record<string, number> = {
  H: 3_600_000,
  M: 60_000,
  S: 1_000,
  m: 1,
  u: 0.001,
  n: 0.000_001,
};

/** Parses a gRPC `grpc-timeout` value (at most 8 digits and a unit) to milliseconds. */
export function parseGrpcTimeout(value: string): number | undefined {
  const match = /^(\d{1,8})([HMSmun])$/.exec(value);
  if (!match) return undefined;
  const [, digits, unit] = match;
  return Number(digits) * (grpcUnitsMs[unit as string] ?? 0);
}

/**
 * Gives a call its deadline before the protocol handler reads it: a call without one gets the
 * method's default, a longer one is capped at the maximum (or the method's longer default). gRPC and gRPC-Web carry it in
 * `grpc-timeout`, Connect in `connect-timeout-ms`; a malformed value is left for the protocol
 * handler to reject.
 */
export function applyDeadline(
  headers: IncomingHttpHeaders,
  path: string,
  policy: DeadlinePolicy,
): void {
  const isGrpc = headers["content-type"]?.startsWith("application/grpc") ?? false;
  const name = isGrpc ? "grpc-timeout" : "connect-timeout-ms";
  const raw = headers[name];
  const { fallback, cap } = boundsOf(policy, path);
  if (typeof raw !== "string") {
    headers[name] = format(fallback, isGrpc);
    return;
  }
  const requested = isGrpc
    ? parseGrpcTimeout(raw)
    : /^\d{1,10}$/.test(raw)
      ? Number(raw)
      : undefined;
  if (requested !== undefined && requested > cap) headers[name] = format(cap, isGrpc);
}

/** The header in which a REST client asks for a deadline, in milliseconds. */
export const restTimeoutHeader = "x-timeout-ms";

/**
 * The deadline of a REST call in milliseconds: what the client asked for in `X-Timeout-Ms`,
 * capped at the maximum (or the method's longer default), else the method's default. Undefined for a malformed value, which the
 * caller refuses.
 */
export function restDeadline(
  policy: DeadlinePolicy,
  path: string,
  requested: string | string[] | undefined,
): number | undefined {
  const { fallback, cap } = boundsOf(policy, path);
  if (requested === undefined) return fallback;
  if (typeof requested !== "string" || !/^\d{1,10}$/.test(requested)) return undefined;
  const ms = Number(requested);
  return ms === 0 ? undefined : Math.min(ms, cap);
}

function format(ms: number, grpc: boolean): string {
  return grpc ? `${Math.ceil(ms)}m` : String(Math.ceil(ms));
}
