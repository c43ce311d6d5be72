/**
 * Inserts URL-preview cache entries brought in by `mxcd import synapse`
 * (src/importer/preview-cache-import.ts) into `url_preview_cache`, inside
 * the import batch's transaction. An entry whose key (url, language, hour
 * bucket) is already there is left as it is, so a re-run counts "already
 * present" and never overwrites a preview mxcd fetched itself.
 */
import type { Db } from "../db/database.js";
import { type CachedPreview, urlHash } from "./url-preview-repository.js";

export class ImportedPreviewRepository {
  /** True when inserted, false when an entry with that key was already there. */
  async insert(tx: Db, entry: CachedPreview): Promise<boolean> {
    const result = await tx
      .insertInto("url_preview_cache")
      .values({
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
      })
      .onConflict((oc) => oc.doNothing())
      .executeTakeFirst();
    return Number(result.numInsertedOrUpdatedRows ?? 0n) === 1;
  }
}
