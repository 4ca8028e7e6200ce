import { randomUUID } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import { LockMode, UniqueConstraintViolationException } from "@mikro-orm/core";
import type { SqlEntityManager } from "@mikro-orm/postgresql";
import {
  UserDeletedSchema,
  UserDisabledSchema,
  UserRegisteredSchema,
} from "../../gen/protomesh/user/v1/events_pb.ts";
import { Role, type UserService } from "../../gen/protomesh/user/v1/user_pb.ts";
import { requireIdentity } from "../../kit/auth/identity.ts";
import type { Database } from "../../kit/db/database.ts";
import type { Jobs } from "../../kit/jobs/jobs.ts";
import { type PageTokens, pageSizeOf } from "../../kit/page-token.ts";
import { traceparentOf } from "../../kit/trace-context.ts";
import { parseUuid } from "../../kit/uuid.ts";
import type { UserConfig } from "./config.ts";
import { userToProto } from "./convert.ts";
import { User, type UserRow, VerificationToken } from "./entities.ts";
import type { SigningKeys } from "./keys.ts";
import { type PasswordCheck, wrongPassword } from "./password-check.ts";
import { hashPassword } from "./passwords.ts";
import type { Revocations } from "./revocations.ts";
import { newOpaqueToken, tokenHash } from "./tokens.ts";
import { checkPassword, normalizeDisplayName, normalizeEmail } from "./validation.ts";

/** The streams the user service publishes its events to, one per event type. */
export const userStreams = {
  registered: "user.registered",
  deleted: "user.deleted",
  disabled: "user.disabled",
} as const;

/** ListUsers page size: 50 by default, larger requests clamped to 200. */
const userPages = { size: 50, max: 200 };

/** What the account RPCs need. */
export interface AccountDeps {
  readonly db: Database;
  readonly jobs: Jobs;
  readonly keys: SigningKeys;
  readonly pageTokens: PageTokens;
  readonly config: UserConfig;
  readonly revocations: Revocations;
  readonly passwords: PasswordCheck;
}

type AccountRpcs = Omit<
  ServiceImpl<typeof UserService>,
  "login" | "refresh" | "logout" | "changePassword" | "logoutAll" | "listRevocations"
>;

const notFound = (id: string) => new ConnectError(`user ${id} not found`, Code.NotFound);

/**
 * Registration, verification, profiles, deletion, the admin RPCs and the public keys. Deleting,
 * disabling and changing the role of an account end its sessions (see revocations.ts).
 */
export function createAccountRpcs({
  db,
  jobs,
  keys,
  pageTokens,
  config,
  revocations,
  passwords,
}: AccountDeps): AccountRpcs {
  const adminEmail = config.ADMIN_EMAIL?.toLowerCase();

  async function findUser(id: string): Promise<UserRow> {
    const user = await db.fork().findOne(User, { id: parseUuid(id, "id") });
    if (!user) throw notFound(id);
    return user;
  }

  return {
    async register(req, ctx) {
      const email = normalizeEmail(req.email);
      checkPassword(req.password);
      const displayName = normalizeDisplayName(req.displayName);
      const passwordHash = await hashPassword(req.password);
      const now = new Date();
      const token = newOpaqueToken();
      const expires = new Date(now.getTime() + config.VERIFICATION_TOKEN_TTL_S * 1000);
      const user: UserRow = {
        id: randomUUID(),
        email,
        passwordHash,
        displayName,
        // ADMIN_EMAIL's account becomes admin when it proves it owns the address (VerifyEmail),
        // not at registration: whoever registered the address first could not otherwise.
        role: "member",
        emailVerified: false,
        disabled: false,
        createdAt: now,
        updatedAt: now,
      };
      try {
        await db.fork().transactional(async (em) => {
          em.create(User, user);
          // The token references the account: insert the account first.
          await em.flush();
          em.create(VerificationToken, {
            tokenHash: tokenHash(token),
            userId: user.id,
            expiresAt: expires,
          });
          const event = create(UserRegisteredSchema, {
            userId: user.id,
            email,
            displayName,
            verificationToken: token,
            expireTime: timestampFromDate(expires),
          });
          jobs.publish(em, userStreams.registered, UserRegisteredSchema, event, traceparentOf(ctx));
        });
      } catch (err) {
        if (err instanceof UniqueConstraintViolationException) {
          throw new ConnectError(
            `an account with email ${email} already exists`,
            Code.AlreadyExists,
          );
        }
        throw err;
      }
      return userToProto(user);
    },

    async verifyEmail(req) {
      if (req.token === "") throw new ConnectError("token is required", Code.InvalidArgument);
      const verified = await db.fork().transactional(async (em) => {
        const record = await em.findOne(
          VerificationToken,
          { tokenHash: tokenHash(req.token) },
          { lockMode: LockMode.PESSIMISTIC_WRITE },
        );
        if (!record || record.usedAt || record.expiresAt <= new Date()) return undefined;
        const user = await em.findOneOrFail(User, { id: record.userId });
        record.usedAt = new Date();
        user.emailVerified = true;
        if (user.email === adminEmail) user.role = "admin";
        user.updatedAt = new Date();
        return user;
      });
      if (!verified) {
        throw new ConnectError(
          "invalid, used or expired verification token; register again or ask for a new mail",
          Code.InvalidArgument,
        );
      }
      return userToProto(verified);
    },

    async getMe(_req, ctx) {
      return userToProto(await findUser(requireIdentity(ctx).userId));
    },

    async updateMe(req, ctx) {
      const paths = req.updateMask?.paths ?? [];
      for (const path of paths) {
        if (path !== "display_name") {
          throw new ConnectError(
            `${path} cannot be updated here; only display_name can`,
            Code.InvalidArgument,
          );
        }
      }
      const wanted = paths.length > 0 || (req.user?.displayName ?? "") !== "";
      const { userId } = requireIdentity(ctx);
      const em = db.fork();
      const user = await em.findOne(User, { id: userId });
      if (!user) throw notFound(userId);
      if (wanted) {
        user.displayName = normalizeDisplayName(req.user?.displayName ?? "");
        user.updatedAt = new Date();
        await em.flush();
      }
      return userToProto(user);
    },

    async getUser(req, ctx) {
      const caller = requireIdentity(ctx);
      const user = await findUser(req.id);
      // Other members see the profile, not the address.
      const own = caller.userId === user.id || caller.roles.includes("admin");
      return userToProto(user, !own);
    },

    async listUsers(req) {
      const limit = pageSizeOf(req.pageSize, userPages);
      const after = req.pageToken ? pageTokens.open("users", req.pageToken) : undefined;
      const where = after
        ? {
            $or: [
              { createdAt: { $gt: new Date(String(after[0])) } },
              { createdAt: new Date(String(after[0])), id: { $gt: String(after[1]) } },
            ],
          }
        : {};
      const rows = await db
        .fork()
        .find(User, where, { orderBy: [{ createdAt: "asc" }, { id: "asc" }], limit: limit + 1 });
      const page = rows.slice(0, limit);
      const last = page.at(-1);
      return {
        users: page.map((u) => userToProto(u)),
        nextPageToken:
          rows.length > limit && last
            ? pageTokens.seal("users", [last.createdAt.toISOString(), last.id])
            : "",
      };
    },

    async setUserRole(req) {
      if (req.role !== Role.MEMBER && req.role !== Role.ADMIN) {
        throw new ConnectError("role must be ROLE_MEMBER or ROLE_ADMIN", Code.InvalidArgument);
      }
      const id = parseUuid(req.id, "id");
      const role = req.role === Role.ADMIN ? "admin" : "member";
      const changed = await revocations.revoking(async (em, revoke) => {
        const admins = await lockAdmins(em);
        const user = await em.findOne(User, { id });
        if (!user) throw notFound(req.id);
        if (isActiveAdmin(user) && role !== "admin" && admins <= 1) throw lastAdmin("be demoted");
        if (user.role !== role) {
          user.role = role;
          user.updatedAt = new Date();
          // Tokens name the roles they were issued with: the account signs in again.
          await revoke(user.id);
        }
        return user;
      });
      return userToProto(changed);
    },

    async deleteMe(req, ctx) {
      const { userId } = requireIdentity(ctx);
      const confirmed = await passwords.confirmCaller(userId, req.password);
      await revocations.revoking(async (em, revoke) => {
        const admins = await lockAdmins(em);
        const user = await em.findOne(
          User,
          { id: userId },
          { lockMode: LockMode.PESSIMISTIC_WRITE },
        );
        if (!user) throw notFound(userId);
        // Its password changed since it was checked: the one given is not the password now.
        if (user.passwordHash !== confirmed.passwordHash) throw wrongPassword();
        if (isActiveAdmin(user) && admins <= 1) throw lastAdmin("delete its account");
        await revoke(userId);
        // Its refresh and verification tokens go with it (on delete cascade).
        await em.nativeDelete(User, { id: userId });
        await em.execute("delete from login_throttle where email = ?", [user.email]);
        const event = create(UserDeletedSchema, {
          userId,
          deleteTime: timestampFromDate(new Date()),
        });
        jobs.publish(em, userStreams.deleted, UserDeletedSchema, event, traceparentOf(ctx));
      });
      return {};
    },

    async disableUser(req, ctx) {
      const id = parseUuid(req.id, "id");
      if (id === requireIdentity(ctx).userId) {
        throw new ConnectError("an admin cannot disable its own account", Code.FailedPrecondition);
      }
      const user = await revocations.revoking(async (em, revoke) => {
        const admins = await lockAdmins(em);
        const user = await em.findOne(User, { id }, { lockMode: LockMode.PESSIMISTIC_WRITE });
        if (!user) throw notFound(req.id);
        if (!user.disabled) {
          // The caller is another admin, unless another admin disabled it meanwhile.
          if (isActiveAdmin(user) && admins <= 1) throw lastAdmin("be disabled");
          user.disabled = true;
          user.updatedAt = new Date();
          await revoke(id);
          const event = create(UserDisabledSchema, {
            userId: id,
            disableTime: timestampFromDate(user.updatedAt),
          });
          jobs.publish(em, userStreams.disabled, UserDisabledSchema, event, traceparentOf(ctx));
        }
        return user;
      });
      return userToProto(user);
    },

    async enableUser(req) {
      const id = parseUuid(req.id, "id");
      const em = db.fork();
      const user = await em.findOne(User, { id });
      if (!user) throw notFound(req.id);
      if (user.disabled) {
        // Its earlier tokens stay revoked: the account logs in again.
        user.disabled = false;
        user.updatedAt = new Date();
        await em.flush();
      }
      return userToProto(user);
    },

    async getJwks() {
      const jwks = await keys.jwks();
      return {
        keys: jwks.map((k) => ({
          kty: k.kty ?? "",
          crv: k.crv ?? "",
          x: k.x ?? "",
          y: k.y ?? "",
          kid: k.kid ?? "",
          alg: k.alg ?? "",
          use: k.use ?? "",
        })),
      };
    },
  };
}

/**
 * Locks the rows of the enabled admins until the transaction ends and counts them: two admins
 * demoting, disabling or deleting each other at once cannot both succeed and leave nobody to
 * administer the accounts. Taken before any other account's row, always in the same order.
 */
async function lockAdmins(em: SqlEntityManager): Promise<number> {
  const admins = await em.find(
    User,
    { role: "admin", disabled: false },
    { lockMode: LockMode.PESSIMISTIC_WRITE, orderBy: { id: "asc" }, fields: ["id"] },
  );
  return admins.length;
}

/** Whether an account counts as an admin: one with the role that is not disabled. */
const isActiveAdmin = (user: UserRow) => user.role === "admin" && !user.disabled;

const lastAdmin = (what: string) =>
  new ConnectError(
    `the last admin cannot ${what}; make another account admin first`,
    Code.FailedPrecondition,
  );
