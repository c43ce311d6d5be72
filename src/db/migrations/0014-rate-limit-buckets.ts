/**
 * Leaky buckets shared by every process on the database (docs/media.md
 * "Rate limits"): one row per (limiter, key) holding `empty_at`, the moment
 * (milliseconds since the epoch, fractional) the bucket will have leaked
 * empty. A bucket whose `empty_at` has passed is the same as no row, so rows
 * are pruned by `empty_at` (the index) and the table holds only buckets
 * that are not yet empty.
 *
 * A new, empty table: the migration rewrites nothing and is O(1).
 */
import type { Kysely } from "kysely";
import type { MigrationContext } from "./migration.js";

export async function up(db: Kysely<unknown>, _context: MigrationContext): Promise<void> {
  await db.schema
    .createTable("rate_limit_buckets")
    .addColumn("limiter", "text", (c) => c.notNull())
    .addColumn("bucket_key", "text", (c) => c.notNull())
    .addColumn("empty_at", "double precision", (c) => c.notNull())
    .addPrimaryKeyConstraint("rate_limit_buckets_pk", ["limiter", "bucket_key"])
    .execute();
  await db.schema
    .createIndex("rate_limit_buckets_empty_at")
    .on("rate_limit_buckets")
    .column("empty_at")
    .execute();
}
