import type { FilterQuery } from "@mikro-orm/core";
import type { QueryBuilder } from "@mikro-orm/postgresql";

/**
 * `<property> in (<subquery>)`, one round trip. MikroORM sends a knex query given as an $in
 * value as a subquery; its types only know lists of values, hence the cast.
 */
export function inSubquery<T>(
  property: keyof T & string,
  subquery: Pick<QueryBuilder<never>, "getKnexQuery">,
): FilterQuery<T> {
  return { [property]: { $in: subquery.getKnexQuery() } } as unknown as FilterQuery<T>;
}
