/**
 * Upload-quota reservations (docs/media.md "Upload limits"): one row per
 * upload whose bytes are streaming for a user with `media_upload_limits`.
 * The quota check counts a user's stored bytes plus their live
 * reservations, so concurrent uploads — in one process or several — cannot
 * together exceed a window. A reservation is deleted in the transaction
 * that stores its media row (the row then counts instead), or when its
 * upload fails; one left by a crashed process stops counting at
 * `expires_ts` (its process renews it while the upload lives).
 *
 * The table is new and empty. The window sums read a new partial index,
 * `local_media_upload_quota` (user_id, created_ts, media_length) over
 * uploads (`url_cache IS NULL`): one index-only range scan per check, no
 * table row visited. Building it reads `local_media_repository` once, at
 * this upgrade (a few seconds per million rows).
 */
import type { Kysely } from "kysely";
import type { MigrationContext } from "./migration.js";

export async function up(db: Kysely<unknown>, _context: MigrationContext): Promise<void> {
  await db.schema
    .createTable("media_upload_reservations")
    .addColumn("reservation_id", "text", (c) => c.primaryKey())
    .addColumn("user_id", "text", (c) => c.notNull())
    .addColumn("bytes", "bigint", (c) => c.notNull())
    /** The process that holds it (renews `expires_ts` while the upload streams). */
    .addColumn("owner", "text", (c) => c.notNull())
    .addColumn("expires_ts", "bigint", (c) => c.notNull())
    .execute();
  await db.schema
    .createIndex("media_upload_reservations_user")
    .on("media_upload_reservations")
    .columns(["user_id", "expires_ts"])
    .execute();
  await db.schema
    .createIndex("local_media_upload_quota")
    .on("local_media_repository")
    // `url_cache` (always null here) only so SQLite sees the index as covering.
    .columns(["user_id", "created_ts", "media_length", "url_cache"])
    .where("url_cache", "is", null)
    .execute();
  await db.schema
    .createIndex("media_upload_reservations_owner")
    .on("media_upload_reservations")
    .column("owner")
    .execute();
}
