import type { DescMethod, DescService } from "@bufbuild/protobuf";
import { getOption, hasOption } from "@bufbuild/protobuf";
import { MethodOptions_IdempotencyLevel as Idempotency } from "@bufbuild/protobuf/wkt";
import { call } from "../gen/protomesh/options/v1/options_pb.ts";

/** True for RPCs that may run twice: `idempotency_level` NO_SIDE_EFFECTS or IDEMPOTENT. */
export function isIdempotent(method: DescMethod): boolean {
  return (
    method.idempotency === Idempotency.NO_SIDE_EFFECTS ||
    method.idempotency === Idempotency.IDEMPOTENT
  );
}

/** The request path of a method on the wire: "/package.Service/Method". */
export function methodPath(method: DescMethod): string {
  return `/${method.parent.typeName}/${method.name}`;
}

/**
 * Default deadlines declared in the contract with `(protomesh.options.v1.call).timeout_ms`,
 * by request path; methods without one use the process default.
 */
export function methodTimeouts(services: readonly DescService[]): Map<string, number> {
  const timeouts = new Map<string, number>();
  for (const service of services) {
    for (const method of service.methods) {
      if (!hasOption(method, call)) continue;
      const { timeoutMs } = getOption(method, call);
      if (timeoutMs > 0) timeouts.set(methodPath(method), timeoutMs);
    }
  }
  return timeouts;
}
