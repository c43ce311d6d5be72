/**
 * Media metadata with Synapse's tables and column names (local uploads,
 * the remote cache and both thumbnail tables), plus an index for every
 * lookup the media admin API makes: sha256 (hash quarantine), (user_id,
 * created_ts) (user media lists), last_access_ts and created_ts (deletion
 * by age, cache purges).
 */
import type { Kysely } from "kysely";
import type { MigrationContext } from "./migration.js";

export async function up(db: Kysely<unknown>, { flag }: MigrationContext): Promise<void> {
  await db.schema
    .createTable("local_media_repository")
    .addColumn("media_id", "text", (c) => c.primaryKey())
    .addColumn("media_type", "text")
    .addColumn("media_length", "bigint")
    .addColumn("created_ts", "bigint", (c) => c.notNull())
    .addColumn("upload_name", "text")
    .addColumn("user_id", "text")
    .addColumn("quarantined_by", "text")
    .addColumn("url_cache", "text")
    .addColumn("last_access_ts", "bigint")
    .addColumn("safe_from_quarantine", flag, (c) => c.notNull().defaultTo(false))
    .addColumn("authenticated", flag, (c) => c.notNull().defaultTo(false))
    .addColumn("sha256", "text")
    .execute();
  await db.schema
    .createIndex("local_media_user_created")
    .on("local_media_repository")
    .columns(["user_id", "created_ts"])
    .execute();
  await db.schema
    .createIndex("local_media_sha256")
    .on("local_media_repository")
    .column("sha256")
    .where("sha256", "is not", null)
    .execute();
  await db.schema
    .createIndex("local_media_last_access")
    .on("local_media_repository")
    .column("last_access_ts")
    .execute();
  await db.schema
    .createIndex("local_media_created")
    .on("local_media_repository")
    .column("created_ts")
    .execute();

  await db.schema
    .createTable("remote_media_cache")
    .addColumn("media_origin", "text", (c) => c.notNull())
    .addColumn("media_id", "text", (c) => c.notNull())
    .addColumn("media_type", "text")
    .addColumn("media_length", "bigint")
    .addColumn("created_ts", "bigint", (c) => c.notNull())
    .addColumn("upload_name", "text")
    .addColumn("filesystem_id", "text", (c) => c.notNull())
    .addColumn("last_access_ts", "bigint", (c) => c.notNull())
    .addColumn("quarantined_by", "text")
    .addColumn("authenticated", flag, (c) => c.notNull().defaultTo(false))
    .addColumn("sha256", "text")
    .addPrimaryKeyConstraint("remote_media_cache_pk", ["media_origin", "media_id"])
    .execute();
  await db.schema
    .createIndex("remote_media_sha256")
    .on("remote_media_cache")
    .column("sha256")
    .where("sha256", "is not", null)
    .execute();
  await db.schema
    .createIndex("remote_media_last_access")
    .on("remote_media_cache")
    .column("last_access_ts")
    .execute();

  await db.schema
    .createTable("local_media_repository_thumbnails")
    .addColumn("media_id", "text", (c) => c.notNull())
    .addColumn("thumbnail_width", "integer", (c) => c.notNull())
    .addColumn("thumbnail_height", "integer", (c) => c.notNull())
    .addColumn("thumbnail_type", "text", (c) => c.notNull())
    .addColumn("thumbnail_method", "text", (c) => c.notNull())
    .addColumn("thumbnail_length", "bigint", (c) => c.notNull())
    .addUniqueConstraint("local_thumbnails_unique", [
      "media_id",
      "thumbnail_width",
      "thumbnail_height",
      "thumbnail_type",
      "thumbnail_method",
    ])
    .execute();

  await db.schema
    .createTable("remote_media_cache_thumbnails")
    .addColumn("media_origin", "text", (c) => c.notNull())
    .addColumn("media_id", "text", (c) => c.notNull())
    .addColumn("thumbnail_width", "integer", (c) => c.notNull())
    .addColumn("thumbnail_height", "integer", (c) => c.notNull())
    .addColumn("thumbnail_method", "text", (c) => c.notNull())
    .addColumn("thumbnail_type", "text", (c) => c.notNull())
    .addColumn("thumbnail_length", "bigint", (c) => c.notNull())
    .addColumn("filesystem_id", "text", (c) => c.notNull())
    .addUniqueConstraint("remote_thumbnails_unique", [
      "media_origin",
      "media_id",
      "thumbnail_width",
      "thumbnail_height",
      "thumbnail_type",
      "thumbnail_method",
    ])
    .execute();
}
