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
import { type CachedPreview, upsertCachedPreview } from "./url-preview-repository.js";

export class ImportedPreviewRepository {
  /** True when inserted (or replaced an older download), false when kept as it was. */
  insert(tx: Db, entry: CachedPreview): Promise<boolean> {
    return upsertCachedPreview(tx, entry, "if-older");
  }
}
