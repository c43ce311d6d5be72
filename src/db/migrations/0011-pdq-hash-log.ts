/**
 * The PDQ hash log (docs/trust-and-safety.md "Admin API: finding media by
 * hash"): an append-only record of every PDQ hash written to
 * `local_media_repository` / `remote_media_cache`, appended in the same
 * transaction as the hash itself. Each process's in-memory similarity index
 * (src/media/pdq-search-service.ts) catches up with it before every query by
 * a primary-key range scan `stream_id > last`.
 *
 * Stream ids come from the one-row `pdq_hash_position` counter, updated in
 * the writing transaction: the row lock serialises writers, so ids become
 * visible in commit order with no gaps and a reader paging by range never
 * skips a record (the same scheme as the quarantine feed).
 *
 * `media_origin` is null for local media. A log row is never updated or
 * deleted; readers verify a candidate against its media row, so a row whose
 * media is gone or re-hashed is simply ignored.
 */
import type { Kysely } from "kysely";
import type { MigrationContext } from "./migration.js";

export async function up(db: Kysely<unknown>, _context: MigrationContext): Promise<void> {
  await db.schema
    .createTable("pdq_hash_log")
    .addColumn("stream_id", "bigint", (c) => c.primaryKey())
    .addColumn("media_origin", "text")
    .addColumn("media_id", "text", (c) => c.notNull())
    .addColumn("pdq", "text", (c) => c.notNull())
    .execute();
  // The verification's "newest record of this item" probe.
  await db.schema.createIndex("pdq_hash_log_media").on("pdq_hash_log").column("media_id").execute();
  await db.schema
    .createTable("pdq_hash_position")
    .addColumn("id", "integer", (c) => c.primaryKey())
    .addColumn("position", "bigint", (c) => c.notNull())
    .execute();
  await (db as Kysely<{ pdq_hash_position: { id: number; position: number } }>)
    .insertInto("pdq_hash_position")
    .values({ id: 1, position: 0 })
    .execute();
}
