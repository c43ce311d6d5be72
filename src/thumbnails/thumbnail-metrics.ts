/**
 * The thumbnail figures of ThumbnailStats on `/metrics`, read when scraped:
 * - `mxcd_thumbnails_generated_total{trigger}`: thumbnails rendered and
 *   stored, on a request or after an upload (pre-generation);
 * - `mxcd_thumbnail_source_loads_total`: originals read into memory;
 * - `mxcd_thumbnail_source_bytes`: bytes of originals in memory now;
 * - `mxcd_thumbnail_sources_in_memory{stat="now"|"peak"}`: originals in
 *   memory now and the most at once since start (bounded by
 *   `max_thumbnail_concurrency`);
 * - `mxcd_thumbnail_still_fallbacks_total{reason}`: animated requests
 *   answered with a still (`budget`: frames or pixels; `timeout`);
 * - `mxcd_thumbnails_discarded_total`: thumbnails of media deleted while
 *   they were being made, removed again;
 * - `mxcd_thumbnail_pregenerations_running`.
 */
import { Counter, Gauge, type Registry } from "prom-client";
import type { ThumbnailStats } from "./thumbnail-stats.js";

export function registerThumbnailMetrics(registry: Registry, stats: ThumbnailStats): void {
  const registers = [registry];
  new Counter({
    name: "mxcd_thumbnails_generated_total",
    help: "Thumbnails rendered and stored, by what caused them (request or upload)",
    labelNames: ["trigger"],
    registers,
    collect() {
      this.reset();
      for (const [trigger, n] of Object.entries(stats.generated)) this.inc({ trigger }, n);
    },
  });
  new Counter({
    name: "mxcd_thumbnail_source_loads_total",
    help: "Originals read into memory to be probed or thumbnailed",
    registers,
    collect() {
      this.reset();
      this.inc(stats.sourceLoads);
    },
  });
  new Gauge({
    name: "mxcd_thumbnail_source_bytes",
    help: "Bytes of originals held in memory for thumbnailing now",
    registers,
    collect() {
      this.set(stats.sourceBytes);
    },
  });
  new Gauge({
    name: "mxcd_thumbnail_sources_in_memory",
    help: "Originals held in memory for thumbnailing: now, and the most at once since start",
    labelNames: ["stat"],
    registers,
    collect() {
      this.set({ stat: "now" }, stats.sourcesHeld);
      this.set({ stat: "peak" }, stats.sourcesHeldPeak);
    },
  });
  new Counter({
    name: "mxcd_thumbnail_still_fallbacks_total",
    help: "Animated thumbnail requests answered with a still, by reason (budget or timeout)",
    labelNames: ["reason"],
    registers,
    collect() {
      this.reset();
      for (const [reason, n] of Object.entries(stats.fallbacks)) this.inc({ reason }, n);
    },
  });
  new Counter({
    name: "mxcd_thumbnails_discarded_total",
    help: "Thumbnails of media deleted while they were being made, removed again",
    registers,
    collect() {
      this.reset();
      this.inc(stats.discarded);
    },
  });
  new Gauge({
    name: "mxcd_thumbnail_pregenerations_running",
    help: "Thumbnail pre-generations under way",
    registers,
    collect() {
      this.set(stats.pregenerationsRunning);
    },
  });
}
