/**
 * Video thumbnail figures, kept as plain numbers by the VideoThumbnailer and
 * read when `/metrics` is scraped:
 * - `mxcd_video_thumbnail_frames_total{outcome}`: frame extractions by how
 *   they ended: `extracted`, `failed` (the command failed or wrote no PNG),
 *   `too_large` (the frame is over `max_image_pixels`), `source_too_large`
 *   (the video is over `video_thumbnails.max_source_size`), `timeout` (the
 *   process group was killed), and `remembered` (a recent failure answered
 *   without running anything);
 * - `mxcd_video_thumbnail_commands_running{stat="now"|"peak"}`: runs under
 *   way (staging or running the command) now, and the most at once since
 *   start; at most `video_thumbnails.concurrency`.
 */
import { Counter, Gauge, type Registry } from "prom-client";
import type { VideoFailureReason } from "./video-thumbnail-error.js";

export type VideoFrameOutcome = "extracted" | "remembered" | VideoFailureReason;

export class VideoThumbnailStats {
  readonly outcomes: Record<VideoFrameOutcome, number> = {
    extracted: 0,
    failed: 0,
    too_large: 0,
    source_too_large: 0,
    timeout: 0,
    remembered: 0,
  };
  /** Runs under way now, and the most at once since start. */
  running = 0;
  runningPeak = 0;

  /** Counts a run that starts; call `finished` when it ends. */
  started(): void {
    this.running += 1;
    this.runningPeak = Math.max(this.runningPeak, this.running);
  }

  finished(): void {
    this.running -= 1;
  }
}

export function registerVideoThumbnailMetrics(registry: Registry, stats: VideoThumbnailStats) {
  const registers = [registry];
  new Counter({
    name: "mxcd_video_thumbnail_frames_total",
    help: "Video frame extractions for thumbnails, by outcome",
    labelNames: ["outcome"],
    registers,
    collect() {
      this.reset();
      for (const [outcome, n] of Object.entries(stats.outcomes)) this.inc({ outcome }, n);
    },
  });
  new Gauge({
    name: "mxcd_video_thumbnail_commands_running",
    help: "Video thumbnail runs (staging or command) under way: now, and the most at once since start",
    labelNames: ["stat"],
    registers,
    collect() {
      this.set({ stat: "now" }, stats.running);
      this.set({ stat: "peak" }, stats.runningPeak);
    },
  });
}
