import { randomUUID } from "node:crypto";
import type { DescMessage, MessageShape } from "@bufbuild/protobuf";
import { toJson } from "@bufbuild/protobuf";
import type { EntityManager } from "@mikro-orm/core";
import { Activity, type ActivityRow, type StoredChange } from "./entities.ts";

/** What happened to what, as recorded in a project's activity log. */
export interface Change {
  readonly projectId: string;
  readonly actorId: string;
  readonly subjectType: ActivityRow["subjectType"];
  readonly subjectId: string;
  readonly action: ActivityRow["action"];
  readonly changes?: readonly StoredChange[];
  readonly at: Date;
}

/**
 * Records a change in the activity log through `em`: call it in the transaction that makes the
 * change, so the log holds exactly what was committed.
 */
export function recordActivity(em: EntityManager, change: Change): void {
  em.create(Activity, {
    id: randomUUID(),
    projectId: change.projectId,
    actorId: change.actorId,
    subjectType: change.subjectType,
    subjectId: change.subjectId,
    action: change.action,
    changes: [...(change.changes ?? [])],
    createdAt: change.at,
  });
}

/**
 * The fields (proto names) whose values differ between two versions of a message, with both
 * values JSON-encoded per the protobuf JSON mapping ("" for an unset field), as the activity
 * log shows them.
 */
export function changedFields<D extends DescMessage>(
  schema: D,
  before: MessageShape<D>,
  after: MessageShape<D>,
  fields: Iterable<string>,
): StoredChange[] {
  const options = { alwaysEmitImplicit: true };
  const old = toJson(schema, before, options) as Record<string, unknown>;
  const now = toJson(schema, after, options) as Record<string, unknown>;
  const encode = (value: unknown) => (value === undefined ? "" : JSON.stringify(value));
  const changes: StoredChange[] = [];
  for (const field of fields) {
    const desc = schema.fields.find((f) => f.name === field);
    if (desc === undefined) throw new Error(`${schema.typeName} has no field ${field}`);
    const change = { field, before: encode(old[desc.jsonName]), after: encode(now[desc.jsonName]) };
    if (change.before !== change.after) changes.push(change);
  }
  return changes;
}
