/**
 * The application-service intake (attached-mode.md §3.2, §8.3 item 4): the
 * transaction ids the homeserver has pushed, and the pushed events that
 * reference media.
 *
 * - `app_service_transactions` (as_id, txn_id) primary key: a replayed
 *   transaction id is a no-op even with several mxcd processes, because the
 *   row is inserted in the same database transaction as the references.
 * - `app_service_events`: one row per pushed event that referenced media
 *   (events without media leave nothing). `position` is the event's local
 *   stream position, in arrival order, used as `media_references.
 *   stream_ordering`; `event_id` is unique so an event delivered twice is
 *   recorded once. `sender`, `type`, `state_key` and `media_content` (only
 *   the fields that carry `mxc://` URIs) are what media_redaction_policy
 *   needs when the event is later redacted.
 */
import type { Kysely } from "kysely";
import type { MigrationContext } from "./migration.js";

/** Creates the two application-service tables. */
export async function up(db: Kysely<unknown>, { flag, autoId }: MigrationContext): Promise<void> {
  await db.schema
    .createTable("app_service_transactions")
    .addColumn("as_id", "text", (c) => c.notNull())
    .addColumn("txn_id", "text", (c) => c.notNull())
    .addColumn("received_ts", "bigint", (c) => c.notNull())
    .addPrimaryKeyConstraint("app_service_transactions_pk", ["as_id", "txn_id"])
    .execute();
  await db.schema
    .createTable("app_service_events")
    .addColumn("position", "integer", autoId)
    .addColumn("event_id", "text", (c) => c.notNull().unique())
    .addColumn("room_id", "text", (c) => c.notNull())
    .addColumn("sender", "text", (c) => c.notNull())
    .addColumn("type", "text", (c) => c.notNull())
    .addColumn("state_key", "text")
    .addColumn("media_content", "text", (c) => c.notNull())
    .addColumn("redacted", flag, (c) => c.notNull().defaultTo(false))
    .execute();
}
