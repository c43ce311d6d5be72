/**
 * The URL-preview cache table (`url_preview_cache`, migration 0008): shared
 * by every process, so a preview fetched by one is served by all. Also the
 * queries of the expiry job (src/jobs/url-preview-expiry-job.ts): expired
 * rows, and url-cache media that no row names any more (indexes: 0009).
 */
import { createHash } from "node:crypto";
import type { Database, Db } from "../db/database.js";
import type { UrlPreviewCacheTable } from "../db/schema.js";

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

  /** Every entry of (url, language): by its hash (indexed), then the URL itself. */
  #entriesOf(url: string, language: string) {
    return this.database.db
      .selectFrom("url_preview_cache")
      .selectAll()
      .where("url_hash", "=", urlHash(url))
      .where("url", "=", url)
      .where("language", "=", language);
  }

  /** The newest entry for (url, language) that has not expired at `now`. */
  async findFresh(url: string, language: string, now: number): Promise<CachedPreview | undefined> {
    const row = await this.#entriesOf(url, language)
      .where("expires_ts", ">", now)
      .orderBy("download_ts", "desc")
      .limit(1)
      .executeTakeFirst();
    return row && toCachedPreview(row);
  }

  /**
   * The preview (status 200) of (url, language) that was current at `ts`:
   * the newest fetched at or before `ts` and fresh at `ts`, among rows that
   * expire after `expiresAfter` (so that a row about to be deleted, with its
   * image, is not handed out). Synapse's rule (media-gaps.md §1.2 step 2),
   * without its "oldest row after ts" fallback: the caller answers with the
   * current preview instead.
   */
  async findAt(
    url: string,
    language: string,
    ts: number,
    expiresAfter: number,
  ): Promise<CachedPreview | undefined> {
    const row = await this.#entriesOf(url, language)
      .where("status", "=", 200)
      .where("download_ts", "<=", ts)
      .where("expires_ts", ">", ts)
      .where("expires_ts", ">", expiresAfter)
      .orderBy("download_ts", "desc")
      .limit(1)
      .executeTakeFirst();
    return row && toCachedPreview(row);
  }

  /**
   * Deletes up to `limit` rows that are past keeping, through `tx`: failures
   * once expired (`expires_ts <= now`), previews `keepMs` after they expired
   * (they still answer a `ts` in the past meanwhile). Returns how many.
   */
  async deleteExpired(tx: Db, now: number, keepMs: number, limit: number): Promise<number> {
    const doomed = tx
      .selectFrom("url_preview_cache")
      .select(["url_hash", "language", "bucket_ts"])
      .where((eb) =>
        eb.or([
          eb("expires_ts", "<=", now - keepMs),
          eb.and([eb("expires_ts", "<=", now), eb("status", "<>", 200)]),
        ]),
      )
      .limit(limit);
    const result = await tx
      .deleteFrom("url_preview_cache")
      .where((eb) =>
        eb(
          eb.refTuple("url_hash", "language", "bucket_ts"),
          "in",
          doomed.$asTuple("url_hash", "language", "bucket_ts"),
        ),
      )
      .executeTakeFirst();
    return Number(result.numDeletedRows);
  }

  /**
   * Up to `limit` url-cache media (URL-preview images) that may go, through
   * `tx`, oldest first after `after`: created before `createdBefore`, named
   * by no cache row, not quarantined and not protected (both stay, as with
   * every other deletion of old media: docs/previews.md "Expiry").
   */
  async unreferencedUrlCacheMedia(
    tx: Db,
    createdBefore: number,
    after: UrlCacheMediaCursor | null,
    limit: number,
  ): Promise<UrlCacheMediaCandidate[]> {
    const rows = await tx
      .selectFrom("local_media_repository as m")
      .select(["m.media_id", "m.url_cache", "m.created_ts"])
      .where("m.url_cache", "is not", null)
      .where("m.created_ts", "<", createdBefore)
      .where("m.quarantined_by", "is", null)
      .where("m.safe_from_quarantine", "=", false)
      .where(({ not, exists, selectFrom }) =>
        not(
          exists(
            selectFrom("url_preview_cache as c")
              .select("c.media_id")
              .whereRef("c.media_id", "=", "m.media_id"),
          ),
        ),
      )
      .$if(after !== null, (q) =>
        q
          .where("m.created_ts", ">=", after!.createdTs)
          .where((eb) =>
            eb.or([
              eb("m.created_ts", ">", after!.createdTs),
              eb("m.media_id", ">", after!.mediaId),
            ]),
          ),
      )
      .orderBy("m.created_ts")
      .orderBy("m.media_id")
      .limit(limit)
      .execute();
    return rows.map((r) => ({
      mediaId: r.media_id,
      urlCache: r.url_cache as string,
      cursor: { createdTs: Number(r.created_ts), mediaId: r.media_id },
    }));
  }

  /** Stores an entry; a second fetch in the same hour bucket replaces the first. */
  async put(entry: CachedPreview): Promise<void> {
    await upsertCachedPreview(this.database.db, entry, "always");
  }
}

/**
 * Inserts `entry` through `db` (a transaction or not). An entry already at
 * its key (url, language, hour bucket) is replaced: `"always"` (mxcd's own
 * fetches: the newer fetch wins), or `"if-older"` only when the stored
 * download is older than `entry`'s (imports must not overwrite a newer
 * preview). True when a row was inserted or replaced.
 */
export async function upsertCachedPreview(
  db: Db,
  entry: CachedPreview,
  replace: "always" | "if-older",
): Promise<boolean> {
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
  const result = await db
    .insertInto("url_preview_cache")
    .values(values)
    .onConflict((oc) => {
      const update = oc.columns(["url_hash", "language", "bucket_ts"]).doUpdateSet({
        download_ts: values.download_ts,
        expires_ts: values.expires_ts,
        og: values.og,
        status: values.status,
        errcode: values.errcode,
        error: values.error,
        media_id: values.media_id,
      });
      return replace === "always"
        ? update
        : update.where("url_preview_cache.download_ts", "<", values.download_ts);
    })
    .executeTakeFirst();
  return Number(result.numInsertedOrUpdatedRows ?? 0n) === 1;
}

/** Where a walk over url-cache media stands (JSON, kept in the job's progress). */
export interface UrlCacheMediaCursor {
  readonly createdTs: number;
  readonly mediaId: string;
}

/** A url-cache media item the expiry job may delete. */
export interface UrlCacheMediaCandidate {
  readonly mediaId: string;
  readonly urlCache: string;
  readonly cursor: UrlCacheMediaCursor;
}

function toCachedPreview(row: UrlPreviewCacheTable): CachedPreview {
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

/** The table's key for `url`: its SHA-256, hex (a URL may exceed a B-tree entry). */
export function urlHash(url: string): string {
  return createHash("sha256").update(url).digest("hex");
}
