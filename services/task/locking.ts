import { Code, ConnectError } from "@connectrpc/connect";
import { type EntityName, LockMode } from "@mikro-orm/core";
import type { SqlEntityManager } from "@mikro-orm/postgresql";
import { notFound } from "./access.ts";
import { etagOf } from "./convert.ts";

/**
 * Loads a versioned row to change it, locked (SELECT … FOR UPDATE) until the transaction
 * ends, so concurrent changes apply one after the other, each to what the previous one left.
 * With an etag, the change is refused with Aborted when the row has moved on since the
 * caller read it: a stale write never silently overwrites another one.
 */
export async function lockForChange<T extends { id: string; version: number }>(
  tx: SqlEntityManager,
  entity: EntityName<T>,
  kind: string,
  id: string,
  etag: string,
): Promise<T> {
  const row = (await tx.findOne(entity, { id } as never, {
    lockMode: LockMode.PESSIMISTIC_WRITE,
  })) as T | null;
  if (row === null) throw notFound(kind, id);
  const current = etagOf(row);
  if (etag !== "" && etag !== current) {
    throw new ConnectError(
      `${kind} ${id} has changed since etag "${etag}" (now "${current}"): fetch it again and reapply your change`,
      Code.Aborted,
    );
  }
  return row;
}
