/**
 * Indexes of the server-wide media listing (`GET /_mxcd/admin/v1/media`,
 * docs/admin-api.md "Server-wide media listing"), whose order is
 * (created_ts, origin, media_id) descending. Each index holds a table's part
 * of that key, after the column a filter pins, so the first page of the
 * listing, unfiltered or with one of these filters, is one index range scan
 * read backwards, with no sort:
 *
 * - `local_media_created_id` (created_ts, media_id): the unfiltered walk;
 * - `local_media_user_created_id` (user_id, created_ts, media_id): `user_id`;
 * - `remote_media_created_id` (created_ts, media_origin, media_id);
 * - `remote_media_origin_created_id` (media_origin, created_ts, media_id): `origin`;
 * - `local_media_quarantined_created` / `remote_media_quarantined_created`:
 *   the same keys over quarantined rows only (partial), for
 *   `quarantined=true`, which is rare and so would otherwise walk far.
 *
 * `local_media_created_id` and `local_media_user_created_id` replace
 * 0002's `local_media_created` (created_ts) and `local_media_user_created`
 * (user_id, created_ts), which are their prefixes: every query those served
 * (retention and purge walks by created_ts then media_id, a user's media)
 * is served as well by the longer index, and PostgreSQL would otherwise
 * pick the shorter one and sort each millisecond's rows (an incremental
 * sort). Dropping them keeps the index count per upload the same plus the
 * two remote-cache indexes and the small partial ones.
 *
 * Building them reads each table once (no rewrite); nothing else changes.
 */
import { type Kysely, sql } from "kysely";
import type { MigrationContext } from "./migration.js";

export async function up(db: Kysely<unknown>, _context: MigrationContext): Promise<void> {
  const quarantined = sql.ref("quarantined_by");
  await db.schema.dropIndex("local_media_created").execute();
  await db.schema.dropIndex("local_media_user_created").execute();
  await db.schema
    .createIndex("local_media_created_id")
    .on("local_media_repository")
    .columns(["created_ts", "media_id"])
    .execute();
  await db.schema
    .createIndex("local_media_user_created_id")
    .on("local_media_repository")
    .columns(["user_id", "created_ts", "media_id"])
    .execute();
  await db.schema
    .createIndex("local_media_quarantined_created")
    .on("local_media_repository")
    .columns(["created_ts", "media_id"])
    .where(quarantined, "is not", null)
    .execute();
  await db.schema
    .createIndex("remote_media_created_id")
    .on("remote_media_cache")
    .columns(["created_ts", "media_origin", "media_id"])
    .execute();
  await db.schema
    .createIndex("remote_media_origin_created_id")
    .on("remote_media_cache")
    .columns(["media_origin", "created_ts", "media_id"])
    .execute();
  await db.schema
    .createIndex("remote_media_quarantined_created")
    .on("remote_media_cache")
    .columns(["created_ts", "media_origin", "media_id"])
    .where(quarantined, "is not", null)
    .execute();
}
