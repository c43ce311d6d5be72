/**
 * Inserts media rows brought in by `mxcd import synapse` (src/importer/),
 * inside the import batch's transaction. Every insert ignores a row that is
 * already there (same id, or same thumbnail key), and reports whether it
 * inserted, so a re-run counts "already present" instead of failing or
 * duplicating: the tables' primary keys and unique constraints make a
 * duplicate impossible.
 */
import type { Db } from "../db/database.js";
import type { RemoteMedia } from "./media-repository.js";

export interface ImportedLocalMedia {
  readonly mediaId: string;
  readonly mediaType: string | null;
  readonly mediaLength: number;
  readonly createdTs: number;
  readonly uploadName: string | null;
  readonly userId: string | null;
  readonly quarantinedBy: string | null;
  readonly lastAccessTs: number | null;
  readonly safeFromQuarantine: boolean;
  readonly authenticated: boolean;
  readonly sha256: string | null;
  /** The previewed URL, for URL-preview media (bytes under `url_cache/`); absent: null. */
  readonly urlCache?: string | null;
}

/** A remote row as imported: the same columns as any cached remote media. */
export type ImportedRemoteMedia = RemoteMedia;

export interface ImportedThumbnail {
  /** Null for a local thumbnail. */
  readonly origin: string | null;
  readonly mediaId: string;
  readonly width: number;
  readonly height: number;
  readonly contentType: string;
  readonly method: string;
  readonly length: number;
  /** Remote thumbnails only. */
  readonly filesystemId: string | null;
}

/** Stateless: every method takes the transaction to write in. */
export class ImportedMediaRepository {
  /** True when the row was inserted, false when that media id was already there. */
  async insertLocal(tx: Db, m: ImportedLocalMedia): Promise<boolean> {
    const result = await tx
      .insertInto("local_media_repository")
      .values({
        media_id: m.mediaId,
        media_type: m.mediaType,
        media_length: m.mediaLength,
        created_ts: m.createdTs,
        upload_name: m.uploadName,
        user_id: m.userId,
        quarantined_by: m.quarantinedBy,
        url_cache: m.urlCache ?? null,
        last_access_ts: m.lastAccessTs,
        safe_from_quarantine: m.safeFromQuarantine,
        authenticated: m.authenticated,
        sha256: m.sha256,
      })
      .onConflict((oc) => oc.doNothing())
      .executeTakeFirst();
    return Number(result.numInsertedOrUpdatedRows ?? 0n) === 1;
  }

  /** True when inserted, false when (origin, media id) was already cached. */
  async insertRemote(tx: Db, m: ImportedRemoteMedia): Promise<boolean> {
    const result = await tx
      .insertInto("remote_media_cache")
      .values({
        media_origin: m.origin,
        media_id: m.mediaId,
        media_type: m.mediaType,
        media_length: m.mediaLength,
        created_ts: m.createdTs,
        upload_name: m.uploadName,
        filesystem_id: m.filesystemId,
        last_access_ts: m.lastAccessTs,
        quarantined_by: m.quarantinedBy,
        authenticated: m.authenticated,
        sha256: m.sha256,
      })
      .onConflict((oc) => oc.doNothing())
      .executeTakeFirst();
    return Number(result.numInsertedOrUpdatedRows ?? 0n) === 1;
  }

  /** True when inserted, false when that thumbnail was already recorded. */
  async insertThumbnail(tx: Db, t: ImportedThumbnail): Promise<boolean> {
    const common = {
      media_id: t.mediaId,
      thumbnail_width: t.width,
      thumbnail_height: t.height,
      thumbnail_type: t.contentType,
      thumbnail_method: t.method,
      thumbnail_length: t.length,
    };
    const result =
      t.origin === null
        ? await tx
            .insertInto("local_media_repository_thumbnails")
            .values(common)
            .onConflict((oc) => oc.doNothing())
            .executeTakeFirst()
        : await tx
            .insertInto("remote_media_cache_thumbnails")
            .values({ ...common, media_origin: t.origin, filesystem_id: t.filesystemId ?? "" })
            .onConflict((oc) => oc.doNothing())
            .executeTakeFirst();
    return Number(result.numInsertedOrUpdatedRows ?? 0n) === 1;
  }
}
