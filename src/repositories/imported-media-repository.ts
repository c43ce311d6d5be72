/**
 * Inserts media rows brought in by `mxcd import synapse` (src/importer/),
 * inside the import batch's transaction. Every insert ignores a row that is
 * already there (same id, or same thumbnail key), and reports whether it
 * inserted, so a re-run counts "already present" instead of failing or
 * duplicating: the tables' primary keys and unique constraints make a
 * duplicate impossible.
 *
 * The `…Many` forms insert a whole import page in multi-row statements
 * (INSERT … ON CONFLICT DO NOTHING RETURNING the keys inserted): one
 * statement per MANY_CHUNK rows instead of one per row, which was the
 * import's cost on PostgreSQL (a round trip per row).
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
  /** MD5 computed while copying (`--copy`); absent or null: left to the media-hash backfill. */
  readonly md5?: string | null;
  /** The previewed URL, for URL-preview media (bytes under `url_cache/`); absent: null. */
  readonly urlCache?: string | null;
}

/**
 * A remote row as imported: the same columns as any cached remote media,
 * without PDQ (the media-hash backfill computes it) and with the MD5 only
 * when the file was copied now.
 */
export type ImportedRemoteMedia = Omit<RemoteMedia, "md5" | "pdq" | "pdqQuality"> & {
  readonly md5?: string | null;
};

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

/**
 * Rows per multi-row INSERT: 500 × 12 columns stays far below SQLite's
 * 32,766 and PostgreSQL's 65,535 bound parameters.
 */
const MANY_CHUNK = 500;

/** Splits `rows` into MANY_CHUNK-row slices. */
function chunks<T>(rows: readonly T[]): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < rows.length; i += MANY_CHUNK) out.push(rows.slice(i, i + MANY_CHUNK));
  return out;
}

/** Stateless: every method takes the transaction to write in. */
export class ImportedMediaRepository {
  /** Inserts local rows; returns the media ids inserted (the others were already there). */
  async insertLocalMany(tx: Db, rows: readonly ImportedLocalMedia[]): Promise<string[]> {
    const inserted: string[] = [];
    for (const chunk of chunks(rows)) {
      const result = await tx
        .insertInto("local_media_repository")
        .values(chunk.map(localValues))
        .onConflict((oc) => oc.doNothing())
        .returning("media_id")
        .execute();
      for (const r of result) inserted.push(r.media_id);
    }
    return inserted;
  }

  /** Inserts remote rows; returns the (origin, media id) pairs inserted. */
  async insertRemoteMany(
    tx: Db,
    rows: readonly ImportedRemoteMedia[],
  ): Promise<{ origin: string; mediaId: string }[]> {
    const inserted: { origin: string; mediaId: string }[] = [];
    for (const chunk of chunks(rows)) {
      const result = await tx
        .insertInto("remote_media_cache")
        .values(chunk.map(remoteValues))
        .onConflict((oc) => oc.doNothing())
        .returning(["media_origin", "media_id"])
        .execute();
      for (const r of result) inserted.push({ origin: r.media_origin, mediaId: r.media_id });
    }
    return inserted;
  }

  /** Inserts thumbnails (local and remote mixed); returns how many were new. */
  async insertThumbnailsMany(tx: Db, rows: readonly ImportedThumbnail[]): Promise<number> {
    let inserted = 0;
    const local = rows.filter((t) => t.origin === null);
    const remote = rows.filter((t) => t.origin !== null);
    for (const chunk of chunks(local)) {
      const result = await tx
        .insertInto("local_media_repository_thumbnails")
        .values(chunk.map(thumbnailValues))
        .onConflict((oc) => oc.doNothing())
        .returning("media_id")
        .execute();
      inserted += result.length;
    }
    for (const chunk of chunks(remote)) {
      const result = await tx
        .insertInto("remote_media_cache_thumbnails")
        .values(
          chunk.map((t) => ({
            ...thumbnailValues(t),
            media_origin: t.origin ?? "",
            filesystem_id: t.filesystemId ?? "",
          })),
        )
        .onConflict((oc) => oc.doNothing())
        .returning("media_id")
        .execute();
      inserted += result.length;
    }
    return inserted;
  }
}

function localValues(m: ImportedLocalMedia) {
  return {
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
    md5: m.md5 ?? null,
  };
}

function remoteValues(m: ImportedRemoteMedia) {
  return {
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
    md5: m.md5 ?? null,
  };
}

function thumbnailValues(t: ImportedThumbnail) {
  return {
    media_id: t.mediaId,
    thumbnail_width: t.width,
    thumbnail_height: t.height,
    thumbnail_type: t.contentType,
    thumbnail_method: t.method,
    thumbnail_length: t.length,
  };
}
