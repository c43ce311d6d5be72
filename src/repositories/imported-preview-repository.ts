/**
 * Inserts URL-preview cache entries brought in by `mxcd import synapse`
 * (src/importer/preview-cache-import.ts) into `url_preview_cache`, inside
 * the import batch's transaction. An entry whose key (url, language, hour
 * bucket) is already there is replaced only by a later download (Synapse may
 * hold two fetches of a URL in one hour: the newer wins, as mxcd's own
 * cache keeps the newer); so a re-run counts "already present" and a preview
 * mxcd fetched itself since is never overwritten by an older one.
 */
import type { Db } from "../db/database.js";
import { type CachedPreview, urlHash } from "./url-preview-repository.js";

export class ImportedPreviewRepository {
  /** True when inserted (or replaced an older download), false when kept as it was. */
  async insert(tx: Db, entry: CachedPreview): Promise<boolean> {
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
    const result = await tx
      .insertInto("url_preview_cache")
      .values(values)
      .onConflict((oc) =>
        oc
          .columns(["url_hash", "language", "bucket_ts"])
          .doUpdateSet({
            download_ts: values.download_ts,
            expires_ts: values.expires_ts,
            og: values.og,
            status: values.status,
            errcode: values.errcode,
            error: values.error,
            media_id: values.media_id,
          })
          .where("url_preview_cache.download_ts", "<", values.download_ts),
      )
      .executeTakeFirst();
    return Number(result.numInsertedOrUpdatedRows ?? 0n) === 1;
  }
}
