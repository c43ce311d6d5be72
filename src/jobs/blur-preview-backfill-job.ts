/**
 * `blur-preview-backfill` (docs/console.md "How the grid loads"): makes the
 * blur preview (src/thumbnails/blur-preview.ts) of local media that has
 * none — stored before migration 0018, imported from Synapse, or uploaded
 * by a process that died before its thumbnails were pre-generated — so the
 * moderation console's blurred tiles need no thumbnail request.
 *
 * A recurring job. Each pass walks the local images and videos without a
 * preview newest first (the console's first page benefits first), in
 * keyset pages of at most MAX_ITEMS_PER_BATCH by (created_ts, media_id)
 * descending; when the walk is done it starts over after IDLE_MS (media
 * imported or unquarantined meanwhile). Rows younger than `minAgeMs` are
 * left to the upload's pre-generation.
 *
 * The preview is made by BlurPreviewMaker (blur-preview-maker.ts: the
 * source — a stored thumbnail, a video's rendered frame, or an image's
 * original — and the thumbnailer's bounds), one item at a time holding one
 * of the thumbnailer's `max_thumbnail_concurrency` slots (shared with
 * serving). A video with no stored thumbnail is skipped (a later pass
 * looks again).
 *
 * Media whose preview cannot be made (bytes missing, not a picture, over a
 * limit, undecodable) gets NO_BLUR_PREVIEW, so no pass tries it again.
 * Quarantined media is never read: the walk does not list it, and the write
 * is conditional on the row being unquarantined (and still without a
 * preview), so a quarantine that lands while a preview is made drops it.
 *
 * As in media-hash-backfill-job.ts, the slow part runs in `prepare`, outside
 * any transaction; `runBatch`, under the job's lock (one process at a time),
 * writes only when the prepared page starts at the committed progress, and
 * saves the progress with the writes. A crash loses at most the page being
 * prepared: its rows are still without a preview and are walked again.
 */
import type { Db, Tx } from "../db/database.js";
import { NO_BLUR_PREVIEW } from "../domain/blur-preview-value.js";
import type { Logger } from "../logging/logger.js";
import type {
  BlurPreviewCursor,
  BlurPreviewRepository,
  BlurPreviewTodo,
} from "../repositories/blur-preview-repository.js";
import type { BlobStore } from "../storage/blob-store.js";
import type { Thumbnailer } from "../thumbnails/thumbnailer.js";
import type { BackgroundJob, BatchContext, BatchResult, PrepareContext } from "./background-job.js";
import { BlurPreviewMaker, type BlurPreviewOutcome } from "./blur-preview-maker.js";

/** The job's name (its row in `background_jobs` and its lock key). */
export const BLUR_PREVIEW_BACKFILL = "blur-preview-backfill";

/** Items per batch: each is a store read and a decode. */
export const MAX_ITEMS_PER_BATCH = 20;

/** Pause once a pass is walked, before the next. */
export const IDLE_MS = 60 * 60_000;

/** Default age below which rows are left to the upload's pre-generation. */
export const MIN_AGE_MS = 60_000;

/** Where the walk is: the last row seen this pass (null: from the newest). */
export interface BlurPreviewProgress {
  readonly after: BlurPreviewCursor | null;
  /**
   * When the last pass was walked (ms), until the next begins: the pause is
   * kept in the stored progress, so every process (and a restarted one)
   * keeps it, not only the one that finished the pass.
   */
  readonly passDoneAt?: number;
}

interface Prepared {
  readonly row: BlurPreviewTodo;
  readonly outcome: BlurPreviewOutcome;
}

/** A page prepared by `prepare`, for the progress it started from. */
export interface PreparedPreviews {
  readonly from: BlurPreviewProgress;
  readonly items: readonly Prepared[];
  /** Fewer rows than asked: the pass is walked. */
  readonly last: boolean;
  /** The pause after the last pass is still on for this long: nothing was read. */
  readonly restMs?: number;
}

/** This process's counts since start (blur-preview-backfill-metrics.ts). */
export class BlurPreviewBackfillStats {
  /** Previews recorded. */
  made = 0;
  /** Rows recorded as NO_BLUR_PREVIEW. */
  none = 0;
  /** Rows left for a later pass (a video without a stored thumbnail, or a write lost to a race). */
  skipped = 0;
  batches = 0;
  passes = 0;
}

export interface BlurPreviewBackfillDeps {
  readonly previews: Pick<BlurPreviewRepository, "todo" | "countTodo" | "scaleThumbnails">;
  /** The write, in the batch's transaction. */
  readonly record: BlurPreviewRepository["record"];
  readonly store: Pick<BlobStore, "read">;
  /** The server's thumbnailer: its slots, pixel limit and time budget. */
  readonly thumbnailer: Pick<
    Thumbnailer,
    "withSlot" | "probe" | "exceedsPixelLimit" | "blurPreview"
  >;
  /** Largest original read into memory; a larger one gets NO_BLUR_PREVIEW. */
  readonly maxSourceBytes: number;
  readonly logger: Pick<Logger, "info">;
  /** Rows younger than this are left to pre-generation; default MIN_AGE_MS. */
  readonly minAgeMs?: number;
  readonly now?: () => number;
}

export class BlurPreviewBackfillJob
  implements BackgroundJob<BlurPreviewProgress, PreparedPreviews>
{
  readonly name = BLUR_PREVIEW_BACKFILL;
  readonly recurring = true;
  readonly initialProgress: BlurPreviewProgress = { after: null };
  /** Counts of this instance's committed batches (for /metrics and tests). */
  readonly stats = new BlurPreviewBackfillStats();

  readonly #maker: BlurPreviewMaker;

  constructor(private readonly deps: BlurPreviewBackfillDeps) {
    this.#maker = new BlurPreviewMaker(deps);
  }

  /** Items processed so far plus the rows the walk would still list. */
  async estimateTotal(db: Db): Promise<number> {
    const state = await db
      .selectFrom("background_jobs")
      .select("processed")
      .where("name", "=", this.name)
      .executeTakeFirst();
    return Number(state?.processed ?? 0) + (await this.deps.previews.countTodo(this.#before()));
  }

  /** Reads the next page and makes its previews, one at a time (outside any transaction). */
  async prepare(
    progress: BlurPreviewProgress,
    { batchSize, signal }: PrepareContext,
  ): Promise<PreparedPreviews> {
    const restMs = (progress.passDoneAt ?? Number.NEGATIVE_INFINITY) + IDLE_MS - this.#now();
    if (restMs > 0) return { from: progress, items: [], last: false, restMs };
    const limit = Math.min(batchSize, MAX_ITEMS_PER_BATCH);
    const rows = await this.deps.previews.todo(progress.after, limit, this.#before());
    const items: Prepared[] = [];
    for (const row of rows) {
      // Stopping: the page is prepared again by the next run.
      if (signal.aborted) throw signal.reason;
      const outcome = await this.deps.thumbnailer.withSlot(() => this.#maker.outcome(row), signal);
      items.push({ row, outcome });
    }
    return { from: progress, items, last: rows.length < limit };
  }

  async runBatch(
    tx: Tx,
    progress: BlurPreviewProgress,
    { prepared }: BatchContext<PreparedPreviews>,
  ): Promise<BatchResult<BlurPreviewProgress>> {
    if (!prepared || !sameProgress(prepared.from, progress)) {
      return { progress, processed: 0, done: false };
    }
    if (prepared.restMs !== undefined) {
      return { progress, processed: 0, done: false, idleMs: prepared.restMs };
    }
    const counts = { made: 0, none: 0, skipped: 0 };
    for (const { row, outcome } of prepared.items) {
      const value = outcome.kind === "made" ? outcome.preview : NO_BLUR_PREVIEW;
      const written =
        outcome.kind !== "skipped" && (await this.deps.record(tx, row.mediaId, value));
      counts[written ? outcome.kind : "skipped"] += 1;
    }
    const last = prepared.items[prepared.items.length - 1]?.row;
    const next: BlurPreviewProgress = prepared.last
      ? { after: null, passDoneAt: this.#now() }
      : { after: last ? { createdTs: last.createdTs, mediaId: last.mediaId } : progress.after };
    return {
      progress: next,
      processed: prepared.items.length,
      done: false,
      committed: () => this.#committed(counts, prepared),
      ...(prepared.last && { idleMs: IDLE_MS }),
    };
  }

  /** Counts and logs a committed batch. */
  #committed(counts: { made: number; none: number; skipped: number }, prepared: PreparedPreviews) {
    const { stats } = this;
    const { logger } = this.deps;
    stats.made += counts.made;
    stats.none += counts.none;
    stats.skipped += counts.skipped;
    stats.batches += 1;
    if (prepared.items.length > 0) {
      const reasons = prepared.items.flatMap(({ row, outcome }) =>
        outcome.kind === "made" ? [] : [{ media_id: row.mediaId, reason: outcome.reason }],
      );
      logger.info(
        { job: this.name, ...counts, ...(reasons.length > 0 && { without: reasons }) },
        "blur previews backfilled",
      );
    }
    if (prepared.last) {
      stats.passes += 1;
      logger.info({ job: this.name, passes: stats.passes }, "blur preview backfill pass done");
    }
  }

  #now(): number {
    return (this.deps.now ?? Date.now)();
  }

  #before(): number {
    return this.#now() - (this.deps.minAgeMs ?? MIN_AGE_MS);
  }
}

function sameProgress(a: BlurPreviewProgress, b: BlurPreviewProgress): boolean {
  return (
    a.after?.createdTs === b.after?.createdTs &&
    a.after?.mediaId === b.after?.mediaId &&
    a.passDoneAt === b.passDoneAt
  );
}
