/**
 * The URL-preview cache (docs/previews.md "Caching"), shared by every
 * process: one row per (url, language, hour bucket of the fetch) with the
 * preview's JSON, or the Matrix error of a failed fetch, and when it
 * expires (at most one day after the fetch; failures after a minute).
 * `media_id` names the url-cache media of the preview's image, if any.
 * Rows are keyed by `url_hash` (SHA-256 hex of the URL), not the URL: a
 * URL can be longer than PostgreSQL's B-tree entry limit (about 2.7 kB).
 */
import type { Kysely } from "kysely";
import type { MigrationContext } from "./migration.js";

export async function up(db: Kysely<unknown>, _context: MigrationContext): Promise<void> {
  await db.schema
    .createTable("url_preview_cache")
    .addColumn("url_hash", "text", (c) => c.notNull())
    .addColumn("url", "text", (c) => c.notNull())
    .addColumn("language", "text", (c) => c.notNull())
    .addColumn("bucket_ts", "bigint", (c) => c.notNull())
    .addColumn("download_ts", "bigint", (c) => c.notNull())
    .addColumn("expires_ts", "bigint", (c) => c.notNull())
    .addColumn("og", "text")
    .addColumn("status", "integer", (c) => c.notNull())
    .addColumn("errcode", "text")
    .addColumn("error", "text")
    .addColumn("media_id", "text")
    .addPrimaryKeyConstraint("url_preview_cache_pk", ["url_hash", "language", "bucket_ts"])
    .execute();
  await db.schema
    .createIndex("url_preview_cache_expires")
    .on("url_preview_cache")
    .column("expires_ts")
    .execute();
}
