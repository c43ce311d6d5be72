/**
 * `url-preview-expiry` (docs/previews.md "Expiry"): a recurring job that
 * deletes URL-preview cache rows past keeping and the url-cache media
 * (URL-preview images: row, bytes under `url_cache/`, thumbnails and their
 * rows, on the filesystem or S3) that no cache row names any more.
 *
 * The rule, and why (Synapse #19010: Synapse deletes every url-cache image
 * two days after it was stored, even while cache rows and clients still name
 * it):
 * - a preview row is kept `CACHE_ROW_KEEP_MS` (1 day) after it expired: it
 *   still answers a `ts` in the past, but only during the first half of that
 *   day (`HISTORY_SERVE_MS`; constants in url-preview-lifetime.ts), so whatever JSON mxcd
 *   hands out, its image outlives that moment by at least 12 hours;
 * - a failure row goes as soon as it expired (it names no media);
 * - an image goes once no row names it AND it is older than
 *   `MEDIA_MIN_AGE_MS` (2 days, Synapse's lifetime): that covers images
 *   whose row was replaced by a later fetch in the same hour bucket (served
 *   until then, at most a day after they were stored) or never written
 *   (a crash between storing the image and writing the row);
 * - quarantined and protected url-cache media is never deleted here (as
 *   with every deletion of old media): its row keeps the hash blocked and
 *   its quarantine visible to admins and the change feed.
 *
 * One batch, in the runner's transaction under the job's lock (so one
 * process at a time): delete up to `batchSize` rows, then pick up to
 * `MAX_IMAGES_PER_BATCH` images by age and delete each through MediaDeletionService
 * (files first, then its rows through the batch's transaction). Rows are
 * deleted first in the same transaction, so an image whose last row goes
 * in this batch can go in this batch too. A batch that finds less than a
 * full batch of both reports `idleMs` (`url_preview_expiry_interval`).
 */
import type { Tx } from "../db/database.js";
import type { Logger } from "../logging/logger.js";
import { CACHE_ROW_KEEP_MS, MEDIA_MIN_AGE_MS } from "../previews/url-preview-lifetime.js";
import type { LocalMediaItem } from "../repositories/media-admin-repository.js";
import type {
  UrlCacheMediaCursor,
  UrlPreviewRepository,
} from "../repositories/url-preview-repository.js";
import type { BackgroundJob, BatchContext, BatchResult } from "./background-job.js";

/**
 * Most images deleted per batch: their files are deleted while the batch's
 * transaction is open (on SQLite, the database's one write lock), and on S3
 * each is a few requests.
 */
export const MAX_IMAGES_PER_BATCH = 100;

/** The job's name (its row in `background_jobs` and its lock key). */
export const URL_PREVIEW_EXPIRY = "url-preview-expiry";

/** Where the walk over images stands within a pass (null: from the oldest). */
export interface UrlPreviewExpiryProgress {
  readonly after: UrlCacheMediaCursor | null;
}

/** What the job has deleted since start, for `mxcd_url_preview_expired_total`. */
export interface UrlPreviewExpiryStats {
  cacheRows: number;
  media: number;
  /** Committed batches (`mxcd_url_preview_expiry_batches_total`). */
  batches: number;
}

/** The slice of MediaDeletionService the job uses. */
export interface UrlCacheMediaDeletion {
  deleteLocalMediaItemsIn(tx: Tx, items: readonly LocalMediaItem[]): Promise<string[]>;
}

export interface UrlPreviewExpiryDeps {
  readonly cache: UrlPreviewRepository;
  readonly deletion: UrlCacheMediaDeletion;
  readonly logger: Pick<Logger, "info">;
  /** The clock the preview service uses. */
  readonly now: () => number;
  /** `url_preview_expiry_interval`: the pause once caught up. */
  readonly intervalMs: number;
}

/** The job described above; one instance per process. */
export class UrlPreviewExpiryJob implements BackgroundJob<UrlPreviewExpiryProgress> {
  readonly name = URL_PREVIEW_EXPIRY;
  readonly recurring = true;
  readonly initialProgress: UrlPreviewExpiryProgress = { after: null };
  readonly stats: UrlPreviewExpiryStats = { cacheRows: 0, media: 0, batches: 0 };

  constructor(private readonly deps: UrlPreviewExpiryDeps) {}

  async runBatch(
    tx: Tx,
    progress: UrlPreviewExpiryProgress,
    { batchSize }: BatchContext,
  ): Promise<BatchResult<UrlPreviewExpiryProgress>> {
    const { cache, deletion, now: clock } = this.deps;
    const now = clock();
    const rows = await cache.deleteExpired(tx, now, CACHE_ROW_KEEP_MS, batchSize);
    const imageLimit = Math.min(batchSize, MAX_IMAGES_PER_BATCH);
    const candidates = await cache.unreferencedUrlCacheMedia(
      tx,
      now - MEDIA_MIN_AGE_MS,
      progress.after ?? null,
      imageLimit,
    );
    // Items whose files could not be deleted keep their rows (logged by the
    // deletion service); the cursor moves past them, and the next pass retries.
    const media = (await deletion.deleteLocalMediaItemsIn(tx, candidates)).length;
    const fullPage = candidates.length === imageLimit;
    const caughtUp = rows < batchSize && !fullPage;
    return {
      progress: { after: fullPage ? candidates[candidates.length - 1]!.cursor : null },
      processed: rows + media,
      done: false,
      committed: () => this.#record(rows, media),
      ...(caughtUp && { idleMs: this.deps.intervalMs }),
    };
  }

  #record(rows: number, media: number): void {
    this.stats.batches += 1;
    this.stats.cacheRows += rows;
    this.stats.media += media;
    if (rows + media > 0) {
      this.deps.logger.info(
        { job: this.name, cache_rows: rows, media },
        "deleted expired URL previews",
      );
    }
  }
}
