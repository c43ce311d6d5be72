/**
 * Background jobs (docs/jobs.md):
 * - `background_jobs`: one row per job, holding its status and its progress
 *   as JSON. A batch's work and the row's new progress commit in one
 *   transaction, which is what makes jobs resumable with nothing done twice;
 * - an index on `quarantined_media_changes (origin, media_id)`, so the
 *   quarantine-feed backfill asks "has this media any feed record?" with one
 *   index probe. The feed table only exists since 0004 and is small here,
 *   so building the index inside the migration is cheap (the data backfill
 *   itself is a job, never a migration: reference §10).
 */
import type { Kysely } from "kysely";
import type { MigrationContext } from "./migration.js";

export async function up(db: Kysely<unknown>, _context: MigrationContext): Promise<void> {
  await db.schema
    .createTable("background_jobs")
    .addColumn("name", "text", (c) => c.primaryKey())
    .addColumn("status", "text", (c) => c.notNull())
    .addColumn("progress", "text", (c) => c.notNull())
    .addColumn("processed", "bigint", (c) => c.notNull().defaultTo(0))
    .addColumn("total", "bigint")
    .addColumn("duration_ms", "bigint", (c) => c.notNull().defaultTo(0))
    .addColumn("started_ts", "bigint")
    .addColumn("updated_ts", "bigint", (c) => c.notNull())
    .addColumn("completed_ts", "bigint")
    .addColumn("last_error", "text")
    .execute();

  await db.schema
    .createIndex("quarantined_media_changes_media")
    .on("quarantined_media_changes")
    .columns(["origin", "media_id"])
    .execute();
}
