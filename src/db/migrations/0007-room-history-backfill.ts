/**
 * The room-history backfill (docs/attached.md "Backfilling rooms from before
 * the application service"; src/jobs/room-history-backfill-job.ts): one row
 * per room of the homeserver, holding how far the job has paged through the
 * room's history.
 *
 * - `token` is the watermark: the `end` token of the last page of
 *   `GET /_synapse/admin/v1/rooms/<id>/messages?dir=f` whose events are
 *   recorded. It is written in the same database transaction as those
 *   events, so a stopped job resumes from exactly the page after it.
 * - `status`: `pending` (more history to read), `complete` (the history's
 *   end was reached: with the application service pushing later events, the
 *   index holds the room's whole history) or `failed` (the homeserver's
 *   answers could not be used; `last_error` says why).
 * - `(status, room_id)` is indexed: the job picks the next pending room with
 *   one index probe, whatever the number of rooms.
 */
import type { Kysely } from "kysely";
import type { MigrationContext } from "./migration.js";

/** Creates `room_history_backfill`. */
export async function up(db: Kysely<unknown>, _context: MigrationContext): Promise<void> {
  await db.schema
    .createTable("room_history_backfill")
    .addColumn("room_id", "text", (c) => c.primaryKey())
    .addColumn("status", "text", (c) => c.notNull())
    .addColumn("token", "text")
    .addColumn("pages", "bigint", (c) => c.notNull().defaultTo(0))
    .addColumn("events", "bigint", (c) => c.notNull().defaultTo(0))
    .addColumn("skipped", "bigint", (c) => c.notNull().defaultTo(0))
    .addColumn("last_error", "text")
    .addColumn("updated_ts", "bigint", (c) => c.notNull())
    .addColumn("completed_ts", "bigint")
    .execute();
  await db.schema
    .createIndex("room_history_backfill_status")
    .on("room_history_backfill")
    .columns(["status", "room_id"])
    .execute();
}
