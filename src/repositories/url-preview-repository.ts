/**
 * The URL-preview cache table (`url_preview_cache`, migration 0008): shared
 * by every process, so a preview fetched by one is served by all.
 */
import { createHash } from "node:crypto";
import type { Database } from "../db/database.js";

/** A cached preview (`og`) or a cached failure (`status` ≠ 200 with its error). */
export interface CachedPreview {
  readonly url: string;
  readonly language: string;
  readonly bucketTs: number;
  readonly downloadTs: number;
  readonly expiresTs: number;
  readonly og: string | null;
  readonly status: number;
  readonly errcode: string | null;
  readonly error: string | null;
  readonly mediaId: string | null;
}

export class UrlPreviewRepository {
  constructor(private readonly database: Database) {}

  /** The newest entry for (url, language) that has not expired at `now`. */
  async findFresh(url: string, language: string, now: number): Promise<CachedPreview | undefined> {
    const row = await this.database.db
      .selectFrom("url_preview_cache")
      .selectAll()
      .where("url_hash", "=", urlHash(url))
      .where("url", "=", url)
      .where("language", "=", language)
      .where("expires_ts", ">", now)
      .orderBy("download_ts", "desc")
      .limit(1)
      .executeTakeFirst();
    if (!row) return undefined;
    return {
      url: row.url,
      language: row.language,
      bucketTs: Number(row.bucket_ts),
      downloadTs: Number(row.download_ts),
      expiresTs: Number(row.expires_ts),
      og: row.og,
      status: Number(row.status),
      errcode: row.errcode,
      error: row.error,
      mediaId: row.media_id,
    };
  }

  /** Stores an entry; a second fetch in the same hour bucket replaces the first. */
  async put(entry: CachedPreview): Promise<void> {
    const values = {
      url_hash: urlHash(entry.url),
      url: entry.url,
      language: entry.language,
      bucket_ts: entry.bucketTs,
      download_ts: entry.downloadTs,
      expires_ts: entry.expiresTs,
      og: entry.og,
      status: entry.status,
      errcode: entry.errcode,
      error: entry.error,
      media_id: entry.mediaId,
    };
    await this.database.db
      .insertInto("url_preview_cache")
      .values(values)
      .onConflict((oc) =>
        oc.columns(["url_hash", "language", "bucket_ts"]).doUpdateSet({
          download_ts: values.download_ts,
          expires_ts: values.expires_ts,
          og: values.og,
          status: values.status,
          errcode: values.errcode,
          error: values.error,
          media_id: values.media_id,
        }),
      )
      .execute();
  }
}

/** The table's key for `url`: its SHA-256, hex (a URL may exceed a B-tree entry). */
export function urlHash(url: string): string {
  return createHash("sha256").update(url).digest("hex");
}
