import type { DescMethod } from "@bufbuild/protobuf";
import { getOption, hasOption } from "@bufbuild/protobuf";
import { auth } from "../../gen/protomesh/options/v1/options_pb.ts";

/** Who may call an RPC, as `(protomesh.options.v1.auth)` declares it. */
export type AuthPolicy =
  | { readonly kind: "public" }
  | { readonly kind: "authenticated" }
  | { readonly kind: "role"; readonly role: string };

const authenticated: AuthPolicy = { kind: "authenticated" };
const cache = new WeakMap<DescMethod, AuthPolicy>();

/**
 * The auth policy of a method. Without the option, or with one that says nothing usable, the
 * method is "authenticated": a contract mistake must close the door, not open it.
 */
export function authPolicyOf(method: DescMethod): AuthPolicy {
  let policy = cache.get(method);
  if (policy === undefined) {
    policy = readPolicy(method);
    cache.set(method, policy);
  }
  return policy;
}

function readPolicy(method: DescMethod): AuthPolicy {
  if (!hasOption(method, auth)) return authenticated;
  const { policy } = getOption(method, auth);
  switch (policy.case) {
    case "public":
      return policy.value ? { kind: "public" } : authenticated;
    case "role":
      // An empty role is nobody's role: the method stays closed to every caller.
      return { kind: "role", role: policy.value };
    default:
      return authenticated;
  }
}
