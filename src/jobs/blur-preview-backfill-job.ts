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
 * The source of a preview is the smallest stored `scale` thumbnail at least
 * PREVIEW_SOURCE_SIDE a side (already decoded and shrunk once: cheap, and
 * for a video the frame the upload path rendered, as that path makes its
 * preview from the frame); an image without one is read from its original,
 * under the thumbnailer's limits: at most `maxSourceBytes` read, the header
 * checked against `max_image_pixels` before any decode, `thumbnail_timeout`
 * on the render, one item at a time holding one of the thumbnailer's
 * `max_thumbnail_concurrency` slots (shared with serving). A video with no
 * stored thumbnail is skipped (a later pass looks again).
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
  PreviewSourceThumbnail,
} from "../repositories/blur-preview-repository.js";
import { BlobNotFoundError, type BlobStore } from "../storage/blob-store.js";
import { localContentKey, localThumbnailKey } from "../storage/media-paths.js";
import type { Thumbnailer } from "../thumbnails/thumbnailer.js";
import type { BackgroundJob, BatchContext, BatchResult, PrepareContext } from "./background-job.js";

/** The job's name (its row in `background_jobs` and its lock key). */
export const BLUR_PREVIEW_BACKFILL = "blur-preview-backfill";

/** Items per batch: each is a store read and a decode. */
export const MAX_ITEMS_PER_BATCH = 20;

/** Pause once a pass is walked, before the next. */
export const IDLE_MS = 60 * 60_000;

/** Default age below which rows are left to the upload's pre-generation. */
export const MIN_AGE_MS = 60_000;

/** A stored thumbnail at least this large a side is a good enough source (the preview is 32 px). */
const PREVIEW_SOURCE_SIDE = 64;

/** Where the walk is: the last row seen this pass (null: from the newest). */
export interface BlurPreviewProgress {
  readonly after: BlurPreviewCursor | null;
}

/** One row's outcome: a preview, "none possible" (recorded), or left for a later pass. */
type Outcome =
  | { readonly kind: "made"; readonly preview: string }
  | { readonly kind: "none"; readonly reason: string }
  | { readonly kind: "skipped"; readonly reason: string };

interface Prepared {
  readonly row: BlurPreviewTodo;
  readonly outcome: Outcome;
}

/** A page prepared by `prepare`, for the progress it started from. */
export interface PreparedPreviews {
  readonly from: BlurPreviewProgress;
  readonly items: readonly Prepared[];
  /** Fewer rows than asked: the pass is walked. */
  readonly last: boolean;
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

  constructor(private readonly deps: BlurPreviewBackfillDeps) {}

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
    const limit = Math.min(batchSize, MAX_ITEMS_PER_BATCH);
    const rows = await this.deps.previews.todo(progress.after, limit, this.#before());
    const items: Prepared[] = [];
    for (const row of rows) {
      // Stopping: the page is prepared again by the next run.
      if (signal.aborted) throw signal.reason;
      const outcome = await this.deps.thumbnailer.withSlot(() => this.#outcome(row), signal);
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
    const counts = { made: 0, none: 0, skipped: 0 };
    for (const { row, outcome } of prepared.items) {
      const value = outcome.kind === "made" ? outcome.preview : NO_BLUR_PREVIEW;
      const written =
        outcome.kind !== "skipped" && (await this.deps.record(tx, row.mediaId, value));
      counts[written ? outcome.kind : "skipped"] += 1;
    }
    const last = prepared.items[prepared.items.length - 1]?.row;
    const next: BlurPreviewProgress = prepared.last
      ? { after: null }
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

  #before(): number {
    return (this.deps.now ?? Date.now)() - (this.deps.minAgeMs ?? MIN_AGE_MS);
  }

  /** The preview of one row, or why there is none; holding a thumbnailer slot. */
  async #outcome(row: BlurPreviewTodo): Promise<Outcome> {
    const video = row.mediaType.toLowerCase().startsWith("video/");
    const thumbnail = previewSource(await this.deps.previews.scaleThumbnails(row.mediaId));
    if (thumbnail) {
      const key = localThumbnailKey(
        row.mediaId,
        thumbnail.width,
        thumbnail.height,
        thumbnail.contentType,
        thumbnail.method,
      );
      const outcome = await this.#render(key);
      // An image whose thumbnail file is gone: its original may still be there.
      if (!(outcome.kind === "none" && outcome.reason === MISSING && !video)) return outcome;
    }
    if (video) return { kind: "skipped", reason: "no stored thumbnail of this video" };
    if (row.mediaLength > this.deps.maxSourceBytes) {
      return { kind: "none", reason: "original too large" };
    }
    return this.#render(localContentKey(row.mediaId));
  }

  /** Reads `key` (bounded), checks its header and renders the preview. */
  async #render(key: string): Promise<Outcome> {
    const { thumbnailer } = this.deps;
    const source = await this.#read(key);
    if (source === undefined) return { kind: "none", reason: MISSING };
    if (source === null) return { kind: "none", reason: "original too large" };
    const info = await thumbnailer.probe(source);
    if (!info) return { kind: "none", reason: "not a picture" };
    if (thumbnailer.exceedsPixelLimit(info))
      return { kind: "none", reason: "over max_image_pixels" };
    try {
      return { kind: "made", preview: await thumbnailer.blurPreview(source) };
    } catch {
      // sharp's error for a corrupt or too costly picture (thumbnail_timeout).
      return { kind: "none", reason: "undecodable" };
    }
  }

  /**
   * The bytes under `key`: undefined when missing from the store, null when
   * larger than `maxSourceBytes` (read no further). Other store errors
   * (an outage) are thrown: the batch fails and is retried.
   */
  async #read(key: string): Promise<Buffer | null | undefined> {
    let stream: AsyncIterable<Buffer> & { destroy(): void };
    try {
      stream = await this.deps.store.read(key);
    } catch (error) {
      if (error instanceof BlobNotFoundError) return undefined;
      throw error;
    }
    const chunks: Buffer[] = [];
    let length = 0;
    for await (const chunk of stream) {
      length += chunk.length;
      if (length > this.deps.maxSourceBytes) {
        stream.destroy();
        return null;
      }
      chunks.push(chunk);
    }
    return Buffer.concat(chunks);
  }
}

const MISSING = "bytes missing from the store";

/** The smallest stored thumbnail at least PREVIEW_SOURCE_SIDE a side, else the largest. */
function previewSource(
  thumbnails: readonly PreviewSourceThumbnail[],
): PreviewSourceThumbnail | undefined {
  return (
    thumbnails.find((t) => Math.min(t.width, t.height) >= PREVIEW_SOURCE_SIDE) ??
    thumbnails[thumbnails.length - 1]
  );
}

function sameProgress(a: BlurPreviewProgress, b: BlurPreviewProgress): boolean {
  return a.after?.createdTs === b.after?.createdTs && a.after?.mediaId === b.after?.mediaId;
}
