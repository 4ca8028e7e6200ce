import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { ServiceImpl } from "@connectrpc/connect";
import type { UserService } from "../../gen/protomesh/user/v1/user_pb.ts";
import { requireIdentity } from "../../kit/auth/identity.ts";
import type { Revocations } from "./revocations.ts";

type RevocationRpcs = Pick<ServiceImpl<typeof UserService>, "logoutAll" | "listRevocations">;

/** LogoutAll and ListRevocations. */
export function createRevocationRpcs(revocations: Revocations): RevocationRpcs {
  return {
    async logoutAll(_req, ctx) {
      const { userId } = requireIdentity(ctx);
      await revocations.revoking((_em, revoke) => revoke(userId));
      return {};
    },

    async listRevocations() {
      return {
        revocations: (await revocations.inForce()).map((r) => ({
          userId: r.userId,
          revokeTime: timestampFromDate(r.revokedBefore),
        })),
      };
    },
  };
}
