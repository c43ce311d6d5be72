/**
 * Keyset ("seek") paging over a composite sort key, shared by every walk
 * that pages by "(timestamp, unique key) after a cursor": the listing of
 * the media console, media retention and the admin purges.
 *
 * `keysetPage(query, columns, after, direction)` adds
 *
 *     c1 >= v1 AND (c1 > v1 OR c2 > v2 OR (c2 = v2 AND c3 > v3) ...)
 *     ORDER BY c1, c2, c3 ...
 *
 * (the operators flipped for "desc"). Why that spelling and not the row
 * value `(c1, c2) > (v1, v2)`: the leading `c1 >= v1` is a plain range on the
 * first column of the index, which SQLite's planner always turns into an
 * index range scan that starts at the cursor; the OR only filters the few
 * rows of that range that share the cursor's `c1`. Every column sorts in
 * the same direction, so one index on the same columns (in this order,
 * after any equality-constrained columns) serves both the range and the
 * ORDER BY, scanned forwards or backwards, with no sort step.
 */
import type {
  Expression,
  ExpressionBuilder,
  SelectQueryBuilder,
  SqlBool,
  StringReference,
} from "kysely";

export type KeysetDirection = "asc" | "desc";

/** A cursor value: one per key column, in the same order. */
export type KeysetValue = string | number;

/**
 * `query` restricted to rows strictly after `after` (none: from the start)
 * and ordered by `columns`, every column in `direction`.
 */
export function keysetPage<DB, TB extends keyof DB, O>(
  query: SelectQueryBuilder<DB, TB, O>,
  columns: readonly StringReference<DB, TB>[],
  after: readonly KeysetValue[] | null | undefined,
  direction: KeysetDirection,
): SelectQueryBuilder<DB, TB, O> {
  if (after && after.length !== columns.length) {
    throw new Error(`keyset cursor has ${after.length} values for ${columns.length} columns`);
  }
  const q = after ? query.where((eb) => afterKey(eb, columns, after, direction)) : query;
  return orderByKey(q, columns, direction);
}

/** `query` ordered by `columns`, every column in `direction` (the ORDER BY of `keysetPage`). */
export function orderByKey<DB, TB extends keyof DB, O>(
  query: SelectQueryBuilder<DB, TB, O>,
  columns: readonly StringReference<DB, TB>[],
  direction: KeysetDirection,
): SelectQueryBuilder<DB, TB, O> {
  let q = query;
  for (const column of columns) q = q.orderBy(column, direction);
  return q;
}

/** The WHERE term of `keysetPage`: rows strictly after `after` in the key's order. */
export function afterKey<DB, TB extends keyof DB>(
  eb: ExpressionBuilder<DB, TB>,
  columns: readonly StringReference<DB, TB>[],
  after: readonly KeysetValue[],
  direction: KeysetDirection,
): Expression<SqlBool> {
  const beyond = direction === "asc" ? ">" : "<";
  const atOrBeyond = direction === "asc" ? ">=" : "<=";
  // Loosely typed at this one seam: the columns are checked by the caller's
  // StringReference type, the values are a cursor the caller read from them.
  const cmp = (column: StringReference<DB, TB>, op: string, value: KeysetValue) =>
    // biome-ignore lint/suspicious/noExplicitAny: see above
    eb(column as any, op as any, value as any) as Expression<SqlBool>;
  /** Strictly after on columns[i..], the earlier columns being equal to the cursor's. */
  const tail = (i: number): Expression<SqlBool> => {
    const column = columns[i];
    const value = after[i];
    if (column === undefined || value === undefined) throw new Error("short keyset cursor");
    if (i === columns.length - 1) return cmp(column, beyond, value);
    return eb.or([cmp(column, beyond, value), eb.and([cmp(column, "=", value), tail(i + 1)])]);
  };
  if (columns.length === 1) return tail(0);
  const first = columns[0] as StringReference<DB, TB>;
  const firstValue = after[0] as KeysetValue;
  return eb.and([
    cmp(first, atOrBeyond, firstValue),
    eb.or([cmp(first, beyond, firstValue), tail(1)]),
  ]);
}
