/**
 * How the `blur-preview-backfill` job (blur-preview-backfill-job.ts) makes
 * one row's preview, and under which bounds (docs/jobs.md
 * "blur-preview-backfill"): from the smallest stored `scale` thumbnail at
 * least PREVIEW_SOURCE_SIDE a side (for a video, the frame the upload path
 * rendered), else — for an image — from its original, read up to
 * `maxSourceBytes`, its header checked against `max_image_pixels` before
 * any decode, rendered within the thumbnailer's time budget. Call it
 * holding one of the thumbnailer's slots.
 */
import type {
  BlurPreviewRepository,
  BlurPreviewTodo,
  PreviewSourceThumbnail,
} from "../repositories/blur-preview-repository.js";
import { BlobNotFoundError, type BlobStore } from "../storage/blob-store.js";
import { localContentKey, localThumbnailKey } from "../storage/media-paths.js";
import type { Thumbnailer } from "../thumbnails/thumbnailer.js";

/** A stored thumbnail at least this large a side is a good enough source (the preview is 32 px). */
const PREVIEW_SOURCE_SIDE = 64;

/** One row's outcome: a preview, "none possible" (recorded), or left for a later pass. */
export type BlurPreviewOutcome =
  | { readonly kind: "made"; readonly preview: string }
  | { readonly kind: "none"; readonly reason: string }
  | { readonly kind: "skipped"; readonly reason: string };

type Outcome = BlurPreviewOutcome;

export interface BlurPreviewMakerDeps {
  readonly previews: Pick<BlurPreviewRepository, "scaleThumbnails">;
  readonly store: Pick<BlobStore, "read">;
  /** The server's thumbnailer: its pixel limit and time budget. */
  readonly thumbnailer: Pick<Thumbnailer, "probe" | "exceedsPixelLimit" | "blurPreview">;
  /** Largest source read into memory; a larger one gets no preview. */
  readonly maxSourceBytes: number;
}

export class BlurPreviewMaker {
  constructor(private readonly deps: BlurPreviewMakerDeps) {}

  /** The preview of one row, or why there is none; holding a thumbnailer slot. */
  async outcome(row: BlurPreviewTodo): Promise<Outcome> {
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
      // An image whose thumbnail is gone or unreadable: its original may do.
      if (outcome.kind === "made" || video) return outcome;
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
