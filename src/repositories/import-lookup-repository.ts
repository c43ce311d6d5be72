/**
 * Reads of media rows by their Synapse identity, for `mxcd import synapse`:
 * `--copy` asks whether an earlier run already imported a row (then an
 * object of the right size is taken as copied), `--verify` reads the length
 * and hash mxcd recorded, to compare with both copies of the bytes. Each is
 * one primary-key or unique-index lookup.
 */
import type { Db } from "../db/database.js";
import type { ImportedThumbnail } from "./imported-media-repository.js";

/** What mxcd recorded for an imported media row (thumbnails have no hash). */
export interface RecordedMedia {
  readonly mediaLength: number;
  readonly sha256: string | null;
}

/** Stateless: every method takes the database or transaction to read. */
export class ImportLookupRepository {
  async local(db: Db, mediaId: string): Promise<RecordedMedia | undefined> {
    const row = await db
      .selectFrom("local_media_repository")
      .select(["media_length", "sha256"])
      .where("media_id", "=", mediaId)
      .executeTakeFirst();
    return row && { mediaLength: Number(row.media_length), sha256: row.sha256 };
  }

  async remote(db: Db, origin: string, mediaId: string): Promise<RecordedMedia | undefined> {
    const row = await db
      .selectFrom("remote_media_cache")
      .select(["media_length", "sha256"])
      .where("media_origin", "=", origin)
      .where("media_id", "=", mediaId)
      .executeTakeFirst();
    return row && { mediaLength: Number(row.media_length), sha256: row.sha256 };
  }

  /** The recorded thumbnail's length, or undefined when not imported. */
  async thumbnail(db: Db, t: ImportedThumbnail): Promise<number | undefined> {
    const key = {
      media_id: t.mediaId,
      thumbnail_width: t.width,
      thumbnail_height: t.height,
      thumbnail_type: t.contentType,
      thumbnail_method: t.method,
    };
    const row =
      t.origin === null
        ? await db
            .selectFrom("local_media_repository_thumbnails")
            .select("thumbnail_length")
            .where((eb) => eb.and(key))
            .executeTakeFirst()
        : await db
            .selectFrom("remote_media_cache_thumbnails")
            .select("thumbnail_length")
            .where((eb) => eb.and({ ...key, media_origin: t.origin! }))
            .executeTakeFirst();
    return row && Number(row.thumbnail_length);
  }
}
