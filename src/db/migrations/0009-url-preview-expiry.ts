/**
 * Indexes for the URL-preview expiry job (src/jobs/url-preview-expiry-job.ts,
 * docs/previews.md "Expiry"):
 *
 * - `url_preview_cache (media_id)`: "does any cache row still name this
 *   url-cache media?" is one index probe, whatever the size of the cache.
 * - `local_media_repository (created_ts) WHERE url_cache IS NOT NULL`: a
 *   partial index over URL-preview media only, so the job walks preview
 *   images by age without reading the (much larger) rest of the local media.
 *   Both SQLite and PostgreSQL support partial indexes.
 */
import { type Kysely, sql } from "kysely";
import type { MigrationContext } from "./migration.js";

export async function up(db: Kysely<unknown>, _context: MigrationContext): Promise<void> {
  await db.schema
    .createIndex("url_preview_cache_media")
    .on("url_preview_cache")
    .column("media_id")
    .execute();
  await db.schema
    .createIndex("local_media_url_cache_created")
    .on("local_media_repository")
    .column("created_ts")
    .where(sql.ref("url_cache"), "is not", null)
    .execute();
}
