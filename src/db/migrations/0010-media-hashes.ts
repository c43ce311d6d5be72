/**
 * Stored hashes beside `sha256` (docs/trust-and-safety.md "Stored hashes"),
 * on `local_media_repository` and `remote_media_cache`:
 *
 * - `md5`: lowercase hex MD5 of the bytes, computed while they stream in;
 *   null until computed (media stored before this migration, imports).
 * - `pdq`, `pdq_quality`: the PDQ perceptual hash (64 lowercase hex) and its
 *   quality, computed after admission, off the request path.
 * - `pdq_status`: null = not computed yet (the backfill's work list);
 *   `hashed` = `pdq` holds the hash; `none` = computed, no hash, and
 *   `pdq_reason` says why ("not an image", "quality 12 < 50", "over the
 *   size cap", "hasher timed out", ...).
 *
 * New columns are nullable with no default, so adding them rewrites no
 * table on either engine: start-up stays O(1) whatever the table sizes.
 *
 * Indexes: md5 and pdq lookups (partial, non-null only, like `sha256`), and
 * the backfill's work list: a partial index over the primary key of rows
 * whose `pdq_status` is null, so the job pages through exactly the rows
 * that still need work and nothing else (SQLite and PostgreSQL both
 * support partial indexes).
 */
import { type Kysely, sql } from "kysely";
import type { MigrationContext } from "./migration.js";

export async function up(db: Kysely<unknown>, _context: MigrationContext): Promise<void> {
  for (const table of ["local_media_repository", "remote_media_cache"]) {
    await db.schema.alterTable(table).addColumn("md5", "text").execute();
    await db.schema.alterTable(table).addColumn("pdq", "text").execute();
    await db.schema.alterTable(table).addColumn("pdq_quality", "integer").execute();
    await db.schema.alterTable(table).addColumn("pdq_status", "text").execute();
    await db.schema.alterTable(table).addColumn("pdq_reason", "text").execute();
  }
  for (const [prefix, table] of [
    ["local_media", "local_media_repository"],
    ["remote_media", "remote_media_cache"],
  ] as const) {
    await db.schema
      .createIndex(`${prefix}_md5`)
      .on(table)
      .column("md5")
      .where("md5", "is not", null)
      .execute();
    await db.schema
      .createIndex(`${prefix}_pdq`)
      .on(table)
      .column("pdq")
      .where("pdq", "is not", null)
      .execute();
  }
  await db.schema
    .createIndex("local_media_hash_todo")
    .on("local_media_repository")
    .column("media_id")
    .where(sql.ref("pdq_status"), "is", null)
    .execute();
  await db.schema
    .createIndex("remote_media_hash_todo")
    .on("remote_media_cache")
    .columns(["media_origin", "media_id"])
    .where(sql.ref("pdq_status"), "is", null)
    .execute();
}
