/**
 * Provenance of near-duplicate quarantine (docs/trust-and-safety.md
 * "Near-duplicate quarantine"): one row per (target, source) pair, where
 * `target` is a media item quarantined only because its PDQ hash is within
 * `quarantine_similar.pdq_max_distance` of `source`, a media item quarantined
 * for its own sake. A target stays quarantined while it has at least one
 * row; releasing a source drops its rows and releases the targets left
 * with none.
 *
 * Origins: the remote server name for cached remote media, `''` (empty) for
 * local media (a primary key cannot hold the feed's null).
 *
 * A new, empty table: the migration rewrites nothing and is O(1).
 */
import type { Kysely } from "kysely";
import type { MigrationContext } from "./migration.js";

export async function up(db: Kysely<unknown>, _context: MigrationContext): Promise<void> {
  await db.schema
    .createTable("quarantine_propagations")
    .addColumn("target_origin", "text", (c) => c.notNull())
    .addColumn("target_media_id", "text", (c) => c.notNull())
    .addColumn("source_origin", "text", (c) => c.notNull())
    .addColumn("source_media_id", "text", (c) => c.notNull())
    .addColumn("created_ts", "bigint", (c) => c.notNull())
    .addPrimaryKeyConstraint("quarantine_propagations_pk", [
      "target_origin",
      "target_media_id",
      "source_origin",
      "source_media_id",
    ])
    .execute();
  // Releasing a source finds its targets by this index.
  await db.schema
    .createIndex("quarantine_propagations_source")
    .on("quarantine_propagations")
    .columns(["source_origin", "source_media_id"])
    .execute();
}
