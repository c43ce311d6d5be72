/**
 * Quarantine bookkeeping:
 * - `quarantined_media_changes`: the change feed, Synapse's table plus the
 *   `sha256`, `quarantined_by` and `ts` extension fields;
 * - `quarantine_stream`: one row holding the feed's last allocated id. Every
 *   transaction that writes feed records updates this row, so it holds the
 *   row lock until it commits: ids are allocated, and become visible, in
 *   commit order with no gaps (docs/quarantine-feed.md). It starts at 1, as
 *   Synapse's stream does, so the first record is 2;
 * - `quarantine_blocks`: quarantine of remote media not cached yet, applied
 *   the moment it arrives;
 * - an index to page a room's media by mxc for room quarantine.
 */
import { type Kysely, sql } from "kysely";
import type { MigrationContext } from "./migration.js";

export async function up(db: Kysely<unknown>, { flag }: MigrationContext): Promise<void> {
  await db.schema
    .createTable("quarantined_media_changes")
    .addColumn("stream_id", "bigint", (c) => c.primaryKey())
    .addColumn("origin", "text")
    .addColumn("media_id", "text", (c) => c.notNull())
    .addColumn("quarantined", flag, (c) => c.notNull())
    .addColumn("sha256", "text")
    .addColumn("quarantined_by", "text")
    .addColumn("ts", "bigint", (c) => c.notNull())
    .execute();

  await db.schema
    .createTable("quarantine_stream")
    .addColumn("id", "integer", (c) => c.primaryKey())
    .addColumn("position", "bigint", (c) => c.notNull())
    .execute();
  await sql`insert into quarantine_stream (id, position) values (1, 1)`.execute(db);

  await db.schema
    .createTable("quarantine_blocks")
    .addColumn("media_origin", "text", (c) => c.notNull())
    .addColumn("media_id", "text", (c) => c.notNull())
    .addColumn("quarantined_by", "text", (c) => c.notNull())
    .addColumn("created_ts", "bigint", (c) => c.notNull())
    .addPrimaryKeyConstraint("quarantine_blocks_pk", ["media_origin", "media_id"])
    .execute();

  await db.schema
    .createIndex("media_references_room_mxc")
    .on("media_references")
    .columns(["room_id", "media_origin", "media_id"])
    .execute();
}
