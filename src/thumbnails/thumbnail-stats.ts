/**
 * Running figures of thumbnail work, kept as plain numbers by the
 * ThumbnailService and read when `/metrics` is scraped (thumbnail-metrics.ts),
 * so the service needs no metrics library. They make the memory and
 * single-flight guarantees observable: how many originals were read into
 * memory, how many are held now and at most, and how many thumbnails were
 * rendered.
 */
import type { StillFallback } from "./thumbnailer.js";

/** What caused a thumbnail to be rendered. */
export type GenerationTrigger = "request" | "upload";

export class ThumbnailStats {
  /** Thumbnails rendered and stored, by trigger. */
  readonly generated: Record<GenerationTrigger, number> = { request: 0, upload: 0 };
  /** Animated requests answered with a still, by reason. */
  readonly fallbacks: Record<StillFallback, number> = { budget: 0, timeout: 0 };
  /** Originals read into memory to probe or thumbnail them. */
  sourceLoads = 0;
  /** Bytes of originals held in memory now. */
  sourceBytes = 0;
  /** Originals held in memory now, and the most held at once since start. */
  sourcesHeld = 0;
  sourcesHeldPeak = 0;
  /** Thumbnails written for media deleted meanwhile, then removed again. */
  discarded = 0;
  /** Pre-generations under way now. */
  pregenerationsRunning = 0;

  /** Counts an original of `bytes` now held in memory; call `released` when it is dropped. */
  loaded(bytes: number): void {
    this.sourceLoads += 1;
    this.sourceBytes += bytes;
    this.sourcesHeld += 1;
    this.sourcesHeldPeak = Math.max(this.sourcesHeldPeak, this.sourcesHeld);
  }

  released(bytes: number): void {
    this.sourceBytes -= bytes;
    this.sourcesHeld -= 1;
  }
}
