import { Code, ConnectError } from "@connectrpc/connect";
import { MemberRole, TaskPriority, TaskStatus } from "../../gen/protomesh/task/v1/task_pb.ts";
import { parseUuid } from "../../kit/uuid.ts";

const invalid = (message: string) => new ConnectError(message, Code.InvalidArgument);

/** Limits of the task service's fields, as the contract states them (in characters). */
export const limits = {
  projectName: 100,
  projectDescription: 2000,
  title: 200,
  taskDescription: 10_000,
  commentBody: 5000,
  query: 200,
  tag: 50,
  tags: 20,
  /** Assignees or attachments of one task. */
  ids: 20,
} as const;

// Characters are code points: an emoji is one character, as a user counts it.
const lengthOf = (text: string) => [...text].length;

/** Trims a required text field and checks it is 1 to `max` characters. */
export function requiredText(value: string, field: string, max: number): string {
  const trimmed = value.trim();
  if (trimmed === "") throw invalid(`${field} is required`);
  return optionalText(trimmed, field, max);
}

/** Checks an optional text field is at most `max` characters; kept as written. */
export function optionalText(value: string, field: string, max: number): string {
  if (value.length > max && lengthOf(value) > max) {
    throw invalid(`${field} must be at most ${max} characters`);
  }
  return value;
}

/** A status from a request; InvalidArgument for a value the contract does not define. */
export function checkStatus(status: TaskStatus, field = "status"): TaskStatus {
  if (TaskStatus[status] === undefined) throw invalid(`${field} ${status} is not a TaskStatus`);
  return status;
}

/** A priority from a request; InvalidArgument for a value the contract does not define. */
export function checkPriority(priority: TaskPriority): TaskPriority {
  if (TaskPriority[priority] === undefined) {
    throw invalid(`priority ${priority} is not a TaskPriority`);
  }
  return priority;
}

/** A member role from AddMember: required, and one the contract defines. */
export function checkRole(role: MemberRole): MemberRole {
  if (role === MemberRole.UNSPECIFIED) throw invalid("member.role is required");
  if (MemberRole[role] === undefined) throw invalid(`member.role ${role} is not a MemberRole`);
  return role;
}

/**
 * A list of ids (assignee_ids, attachment_ids): UUIDs, at most 20, no duplicates; `noun` says
 * what they name.
 */
export function checkIds(ids: readonly string[], field: string, noun: string): string[] {
  if (ids.length > limits.ids) throw invalid(`${field} must hold at most ${limits.ids} ${noun}`);
  const parsed = ids.map((id, i) => parseUuid(id, `${field}[${i}]`));
  const duplicate = parsed.find((id, i) => parsed.indexOf(id) !== i);
  if (duplicate !== undefined) throw invalid(`${field} lists ${duplicate} twice`);
  return parsed;
}

/** Tags: trimmed, at most 20, each 1 to 50 characters, no duplicates. */
export function checkTags(tags: readonly string[]): string[] {
  if (tags.length > limits.tags) throw invalid(`tags must hold at most ${limits.tags} tags`);
  const trimmed = tags.map((tag) => requiredText(tag, "each tag", limits.tag));
  const duplicate = trimmed.find((tag, i) => trimmed.indexOf(tag) !== i);
  if (duplicate !== undefined) throw invalid(`tags lists "${duplicate}" twice`);
  return trimmed;
}

/**
 * The fields an update changes: those of the mask, or every updatable field when it is empty.
 * "etag" may appear (the gateway derives a PATCH's mask from the body, which carries it): it
 * is the update's precondition, not a field to change. Any other path is InvalidArgument.
 */
export function fieldsToUpdate<F extends string>(
  paths: readonly string[] | undefined,
  updatable: readonly F[],
): Set<F> {
  if (paths === undefined || paths.length === 0) return new Set(updatable);
  const fields = new Set<F>();
  for (const path of paths) {
    if (path === "etag") continue;
    if (!(updatable as readonly string[]).includes(path)) {
      throw invalid(
        `update_mask path "${path}" cannot be updated; use any of ${updatable.join(", ")}`,
      );
    }
    fields.add(path as F);
  }
  return fields;
}
