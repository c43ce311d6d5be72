/**
 * `blur_preview` on `local_media_repository`: a tiny, already blurred and
 * desaturated WebP of the picture (at most 32 px a side, about a hundred
 * bytes) as a `data:image/webp;base64,…` URL, made once when the upload's
 * thumbnails are pre-generated (src/thumbnails/blur-preview.ts). The
 * server-wide media listing (`GET /_mxcd/admin/v1/media`) returns it, so the
 * moderation console shows a page of blurred pictures without fetching one
 * thumbnail per tile (docs/console.md "How the grid loads").
 *
 * Null: not made (media stored before this migration, not a picture, a
 * picture sharp cannot read, URL-preview and remote media). Nullable with no
 * default, so adding it rewrites no table on either engine.
 */
import type { Kysely } from "kysely";
import type { MigrationContext } from "./migration.js";

export async function up(db: Kysely<unknown>, _context: MigrationContext): Promise<void> {
  await db.schema.alterTable("local_media_repository").addColumn("blur_preview", "text").execute();
}
