/**
 * The one-row position counters behind mxcd's append-only streams (the
 * quarantine feed's `quarantine_stream`, the PDQ hash log's
 * `pdq_hash_position`): ids are allocated from the row inside the writer's
 * transaction, so they become visible in commit order and a reader paging
 * by `stream_id > last` never skips one (an autoincrement column on
 * PostgreSQL can commit ids out of order).
 */
import type { Db } from "./database.js";

/** A table holding one `{ id: 1, position }` row. */
export type StreamPositionTable = "quarantine_stream" | "pdq_hash_position";

/** Takes the position row's lock for the rest of `tx` without moving it. */
export async function lockStreamPosition(tx: Db, table: StreamPositionTable): Promise<void> {
  await tx
    .updateTable(table)
    .set((eb) => ({ position: eb.ref("position") }))
    .where("id", "=", 1)
    .execute();
}

/** Allocates `count` ids in `tx`; returns the last of them (the new position). */
export async function allocateStreamIds(
  tx: Db,
  table: StreamPositionTable,
  count: number,
): Promise<number> {
  const { position } = await tx
    .updateTable(table)
    .set((eb) => ({ position: eb("position", "+", count) }))
    .where("id", "=", 1)
    .returning("position")
    .executeTakeFirstOrThrow();
  return Number(position);
}
