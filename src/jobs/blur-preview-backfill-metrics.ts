/**
 * The `blur-preview-backfill` job's counts on `/metrics` (docs/console.md
 * "How the grid loads"), read when scraped, for this process's batches
 * since start:
 * - `mxcd_blur_preview_backfill_items_total{outcome="made"|"none"|"skipped"}`:
 *   previews recorded; media recorded as having none possible (bytes
 *   missing, not a picture, over a limit, undecodable); media left for a
 *   later pass (a video without a stored thumbnail, a lost race);
 * - `mxcd_blur_preview_backfill_batches_total`: committed batches;
 * - `mxcd_blur_preview_backfill_passes_total`: passes walked to the oldest media.
 */
import { Counter, type Registry } from "prom-client";
import type { BlurPreviewBackfillStats } from "./blur-preview-backfill-job.js";

export function registerBlurPreviewBackfillMetrics(
  registry: Registry,
  stats: BlurPreviewBackfillStats,
): void {
  const registers = [registry];
  new Counter({
    name: "mxcd_blur_preview_backfill_items_total",
    help: "Local media the blur-preview backfill handled, by outcome (made, none, skipped)",
    labelNames: ["outcome"],
    registers,
    collect() {
      this.reset();
      this.inc({ outcome: "made" }, stats.made);
      this.inc({ outcome: "none" }, stats.none);
      this.inc({ outcome: "skipped" }, stats.skipped);
    },
  });
  new Counter({
    name: "mxcd_blur_preview_backfill_batches_total",
    help: "Committed batches of the blur-preview backfill",
    registers,
    collect() {
      this.reset();
      this.inc(stats.batches);
    },
  });
  new Counter({
    name: "mxcd_blur_preview_backfill_passes_total",
    help: "Passes of the blur-preview backfill walked to the oldest media in this process",
    registers,
    collect() {
      this.reset();
      this.inc(stats.passes);
    },
  });
}
