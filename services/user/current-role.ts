import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { authPolicyOf } from "../../kit/auth/auth-policy.ts";
import { identityKey } from "../../kit/auth/identity.ts";
import type { Database } from "../../kit/db/database.ts";
import { User } from "./entities.ts";

/**
 * Creates the interceptor that holds a role-restricted RPC to the caller's role as the database
 * has it now, not as the access token recorded it: a demoted or disabled admin's token no
 * longer opens the admin RPCs, even on an instance that has not reloaded the revocations yet.
 * Runs after the auth interceptor, which has already refused callers whose token lacks the
 * role.
 */
export function createCurrentRoleInterceptor(db: Database): Interceptor {
  return (next) => async (req) => {
    const policy = authPolicyOf(req.method);
    const identity = req.contextValues.get(identityKey);
    if (policy.kind === "role" && identity !== undefined) {
      const user = await db
        .fork()
        .findOne(User, { id: identity.userId }, { fields: ["role", "disabled"] });
      if (user?.disabled) {
        throw new ConnectError("this account is disabled", Code.PermissionDenied);
      }
      if (user?.role !== policy.role) {
        throw new ConnectError(
          `requires role ${policy.role}, which this account no longer has; sign in again`,
          Code.PermissionDenied,
        );
      }
    }
    return next(req);
  };
}
