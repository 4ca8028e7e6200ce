// The admin RPCs follow the account's role in the database, not the token's claim. The instance
// that changes a role refuses the account's earlier tokens at once (admin.test.ts); this is the
// other instance, which has not reloaded the revocations yet: its verifier has none, over
// Connect's in-memory transport, and only the database says that the admin was demoted or
// disabled.
import { randomUUID } from "node:crypto";
import { Code, createClient, createRouterTransport } from "@connectrpc/connect";
import { afterAll, beforeAll, expect, it } from "vitest";
import { UserService } from "../../gen/protomesh/user/v1/user_pb.ts";
import { createAuthInterceptor } from "../../kit/auth/auth-interceptor.ts";
import { createTokenVerifier } from "../../kit/auth/token-verifier.ts";
import { openTestDatabase, type TestDatabase } from "../../test/support/database.ts";
import { bearer, expectCode, testLog } from "../../test/support/user-service.ts";
import { createCurrentRoleInterceptor } from "./current-role.ts";
import { User, userEntities } from "./entities.ts";
import { loadSigningKeys, type SigningKeys } from "./keys.ts";
import { userMigrations } from "./migrations.ts";
import { rolesOf, signAccessToken } from "./tokens.ts";

let db: TestDatabase;
let keys: SigningKeys;

beforeAll(async () => {
  db = await openTestDatabase({ entities: userEntities, migrations: userMigrations, log: testLog });
  keys = await loadSigningKeys(db, { log: testLog });
});
afterAll(async () => {
  keys?.close();
  await db?.close();
});

/** An account with `role` in the database, and an access token that claims admin. */
async function accountClaimingAdmin(role: "member" | "admin", disabled = false) {
  const now = new Date();
  const id = randomUUID();
  const em = db.fork();
  em.create(User, {
    id,
    email: `${id}@example.com`,
    passwordHash: "unused",
    displayName: "Claimant",
    role,
    emailVerified: true,
    disabled,
    createdAt: now,
    updatedAt: now,
  });
  await em.flush();
  const policy = {
    issuer: "protomesh",
    audience: "protomesh",
    accessTtlSec: 900,
    refreshTtlSec: 60,
  };
  return signAccessToken(keys, policy, {
    userId: id,
    email: `${id}@example.com`,
    roles: rolesOf("admin"),
    issuedAtMs: Date.now(),
  });
}

const users = () =>
  createClient(
    UserService,
    createRouterTransport(
      ({ service }) => {
        service(UserService, { listUsers: () => ({ users: [] }) });
      },
      {
        router: {
          interceptors: [
            createAuthInterceptor({ verifier: createTokenVerifier({ keys }) }),
            createCurrentRoleInterceptor(db),
          ],
        },
      },
    ),
  );

it("refuses an admin RPC to a token that claims admin for an account that is a member now", async () => {
  await expectCode(
    users().listUsers({}, bearer(await accountClaimingAdmin("member"))),
    Code.PermissionDenied,
    /requires role admin, which this account no longer has; sign in again/,
  );
});

it("refuses an admin RPC to an admin's token once the account is disabled", async () => {
  await expectCode(
    users().listUsers({}, bearer(await accountClaimingAdmin("admin", true))),
    Code.PermissionDenied,
    /this account is disabled/,
  );
});

it("answers the same token when the account is an admin in the database", async () => {
  expect(await users().listUsers({}, bearer(await accountClaimingAdmin("admin")))).toMatchObject({
    users: [],
  });
});
