import { Code, ConnectError } from "@connectrpc/connect";
import {
  type EntityManager,
  type EntityName,
  type FilterQuery,
  QueryOrder,
  type QueryOrderMap,
} from "@mikro-orm/core";
import { type PageTokens, pageSizeOf } from "../page-token.ts";

/** A value of a page cursor, as page tokens carry it. */
export type CursorValue = string | number;

/** How a list is sorted: one property, then a unique property that breaks its ties. */
export interface KeysetSort<T> {
  /** The property sorted by. */
  readonly key: keyof T & string;
  /** What the key holds, so its value survives the trip through a page token. */
  readonly kind: "date" | "number" | "string";
  readonly direction: "asc" | "desc";
  /** Whether the key may be null; null rows come last, whatever the direction. */
  readonly nullable?: boolean;
  /** A unique property (the id), sorted in the same direction. */
  readonly tieBreaker: keyof T & string;
}

/**
 * Keyset ("seek") pagination over one sort: the order to query in, the condition that selects
 * the rows after a cursor and the cursor of a row. A page then costs an index range scan
 * however deep it is, and rows inserted meanwhile never shift a later page.
 */
export interface Keyset<T> {
  readonly orderBy: QueryOrderMap<T>[];
  /** The rows of `where` strictly after the row the cursor was taken from (all without one). */
  after(where: FilterQuery<T>, cursor: readonly CursorValue[] | undefined): FilterQuery<T>;
  /** The cursor of a row, to seal into the next page token. */
  cursorOf(row: T): CursorValue[];
}

const invalidCursor = () =>
  new ConnectError(
    "invalid page_token: pass the next_page_token of the previous page",
    Code.InvalidArgument,
  );

/** Creates the keyset of a sort. */
export function createKeyset<T>(sort: KeysetSort<T>): Keyset<T> {
  const { key, tieBreaker, direction } = sort;
  const asc = direction === "asc";
  const beyond = asc ? "$gt" : "$lt";
  const order = asc
    ? sort.nullable
      ? QueryOrder.ASC_NULLS_LAST
      : QueryOrder.ASC
    : sort.nullable
      ? QueryOrder.DESC_NULLS_LAST
      : QueryOrder.DESC;

  // A cursor is [key, tie-breaker]; a null key travels as "" (only nullable keys have one).
  const decode = (value: CursorValue | undefined): unknown => {
    if (value === "" && sort.nullable) return null;
    switch (sort.kind) {
      case "date": {
        const date = new Date(String(value));
        if (typeof value !== "string" || Number.isNaN(date.getTime())) throw invalidCursor();
        return date;
      }
      case "number":
        if (typeof value !== "number") throw invalidCursor();
        return value;
      case "string":
        if (typeof value !== "string") throw invalidCursor();
        return value;
    }
  };

  return {
    orderBy: [{ [key]: order }, { [tieBreaker]: order }] as QueryOrderMap<T>[],
    after(where, cursor) {
      if (cursor === undefined) return where;
      if (cursor.length !== 2 || typeof cursor[1] !== "string") throw invalidCursor();
      const value = decode(cursor[0]);
      const tie = cursor[1];
      if (value === null) {
        // Among the null keys, which come last: only the rest of them.
        return {
          $and: [where, { [key]: null, [tieBreaker]: { [beyond]: tie } }],
        } as FilterQuery<T>;
      }
      const seek = {
        $or: [
          { [key]: { [beyond]: value } },
          { [key]: value, [tieBreaker]: { [beyond]: tie } },
          ...(sort.nullable ? [{ [key]: null }] : []),
        ],
      };
      // The same rows again as a plain range of the key, which the database can start an
      // index scan at; the OR alone would have it read (and drop) every row before the cursor.
      const range = sort.nullable ? {} : { [key]: { [asc ? "$gte" : "$lte"]: value } };
      return { $and: [where, range, seek] } as FilterQuery<T>;
    },
    cursorOf(row) {
      const value = row[key] as unknown;
      const encoded =
        value === null || value === undefined
          ? ""
          : value instanceof Date
            ? value.toISOString()
            : (value as CursorValue);
      return [encoded, String(row[tieBreaker])];
    },
  };
}

/** What a list RPC asks for: a page size (0 for the default) and the previous page's token. */
export interface PageRequest {
  readonly pageSize: number;
  readonly pageToken: string;
}

/** How to read one page of a list with findPage. */
export interface PageQuery<T> {
  readonly keyset: Keyset<T>;
  readonly tokens: PageTokens;
  /** What the token is bound to (the list, its owner and its filters): another list refuses it. */
  readonly scope: string;
  /** Default and largest page size; 50 and 200 unless given, as the contracts say. */
  readonly sizes?: { readonly size: number; readonly max: number };
}

/** One page of rows and the token of the next one ("" after the last page). */
export interface Page<T> {
  readonly rows: T[];
  readonly nextPageToken: string;
}

/**
 * Reads the page of `where` that a request asks for: the rows after its token's cursor in the
 * keyset's order, one more than the page size to learn whether another page follows.
 */
export async function findPage<T extends object>(
  em: EntityManager,
  entity: EntityName<T>,
  where: FilterQuery<T>,
  request: PageRequest,
  query: PageQuery<T>,
): Promise<Page<T>> {
  const limit = pageSizeOf(request.pageSize, query.sizes ?? { size: 50, max: 200 });
  const cursor = request.pageToken ? query.tokens.open(query.scope, request.pageToken) : undefined;
  const found = (await em.find(entity, query.keyset.after(where, cursor), {
    orderBy: query.keyset.orderBy,
    limit: limit + 1,
  })) as T[];
  const rows = found.slice(0, limit);
  const last = rows.at(-1);
  return {
    rows,
    nextPageToken:
      found.length > limit && last !== undefined
        ? query.tokens.seal(query.scope, query.keyset.cursorOf(last))
        : "",
  };
}

/**
 * Reads every row of `where` in the keyset's order, `batchSize` rows per query, yielding each
 * batch: memory holds one batch whatever the number of rows (the rows stay out of the
 * EntityManager's identity map), and rows inserted meanwhile never make it repeat or skip one.
 * Stops with the signal's reason once it is aborted.
 */
export async function* scanInBatches<T extends object>(
  em: EntityManager,
  entity: EntityName<T>,
  where: FilterQuery<T>,
  keyset: Keyset<T>,
  options: { readonly batchSize: number; readonly signal?: AbortSignal },
): AsyncGenerator<T[]> {
  let cursor: CursorValue[] | undefined;
  for (;;) {
    options.signal?.throwIfAborted();
    const rows = (await em.find(entity, keyset.after(where, cursor), {
      orderBy: keyset.orderBy,
      limit: options.batchSize,
      disableIdentityMap: true,
    })) as T[];
    const last = rows.at(-1);
    if (last === undefined) return;
    yield rows;
    if (rows.length < options.batchSize) return;
    cursor = keyset.cursorOf(last);
  }
}
