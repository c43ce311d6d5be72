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
 * A new, empty table: the migration rewrites nothing and is O(1). The
 * window sums use the existing `local_media_user_created` index.
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
    .createIndex("media_upload_reservations_owner")
    .on("media_upload_reservations")
    .column("owner")
    .execute();
}
