/**
 * Indexes for two filters of the server-wide media listing (`GET
 * /_mxcd/admin/v1/media`, docs/admin-api.md "Server-wide media listing")
 * that 0015's indexes cannot seek on. Without them such a page walks the
 * whole created_ts index when the filter is rare, testing each row: at
 * 100,000 media a page cost 90–110 ms of CPU for a type or a protection
 * that matches nothing (bench/README.md "Console listing"), and the walk
 * grows with the table.
 *
 * - `local_media_type_created_id` (media_type, created_ts, media_id) and
 *   `remote_media_type_created_id` (media_type, created_ts, media_origin,
 *   media_id): an exact `media_type` is one range read backwards, as
 *   `user_id` is with 0015's index. A type prefix (`image/`) still filters
 *   the created_ts walk: a prefix is a range of types, whose rows no index
 *   holds in created_ts order.
 * - `local_media_protected_created` (created_ts, media_id) over protected
 *   rows only (partial): `protected=true`, rare as `quarantined=true` is.
 *
 * `quarantined=false`, `protected=false` and common types match most rows,
 * so their walk stops early; size ranges still filter the walk (no index
 * orders a size range by time).
 */
import { type Kysely, sql } from "kysely";
import type { MigrationContext } from "./migration.js";

export async function up(db: Kysely<unknown>, _context: MigrationContext): Promise<void> {
  await db.schema
    .createIndex("local_media_type_created_id")
    .on("local_media_repository")
    .columns(["media_type", "created_ts", "media_id"])
    .execute();
  await db.schema
    .createIndex("remote_media_type_created_id")
    .on("remote_media_cache")
    .columns(["media_type", "created_ts", "media_origin", "media_id"])
    .execute();
  await db.schema
    .createIndex("local_media_protected_created")
    .on("local_media_repository")
    .columns(["created_ts", "media_id"])
    .where(sql.ref("safe_from_quarantine"), "=", sql.lit(true))
    .execute();
}
