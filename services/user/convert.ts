import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Role, type User, UserSchema } from "../../gen/protomesh/user/v1/user_pb.ts";
import type { UserRow } from "./entities.ts";

/** The API form of a stored role. */
export function roleToProto(role: UserRow["role"]): Role {
  return role === "admin" ? Role.ADMIN : Role.MEMBER;
}

/** The API form of an account; `redactEmail` hides the address from other members. */
export function userToProto(row: UserRow, redactEmail = false): User {
  return create(UserSchema, {
    id: row.id,
    email: redactEmail ? "" : row.email,
    displayName: row.displayName,
    role: roleToProto(row.role),
    emailVerified: row.emailVerified,
    disabled: row.disabled,
    createTime: timestampFromDate(row.createdAt),
    updateTime: timestampFromDate(row.updatedAt),
  });
}
