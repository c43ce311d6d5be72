/**
 * URL-preview counters, read when scraped: `mxcd_url_previews_served_total`,
 * `mxcd_url_preview_cache_hits_total`, `mxcd_url_preview_flight_joins_total` and
 * `mxcd_url_preview_fetch_failures_total{kind}` (kinds: see
 * PreviewFailureKind; image and oEmbed failures that only drop a part of a
 * preview count too); and the expiry job's `mxcd_url_preview_expired_total{what}`
 * (`cache_row`, `media`) and `mxcd_url_preview_expiry_batches_total`.
 */
import { Counter, type Registry } from "prom-client";
import type { UrlPreviewExpiryStats } from "../jobs/url-preview-expiry-job.js";
import type { UrlPreviewStats } from "../previews/url-preview-service.js";

export function registerPreviewMetrics(
  registry: Registry,
  source: { stats: UrlPreviewStats },
  expiry: { stats: UrlPreviewExpiryStats },
): void {
  new Counter({
    name: "mxcd_url_preview_expired_total",
    help: "Expired URL-preview cache rows and url-cache media (images) deleted by this process, by what",
    labelNames: ["what"],
    registers: [registry],
    collect() {
      this.reset();
      this.inc({ what: "cache_row" }, expiry.stats.cacheRows);
      this.inc({ what: "media" }, expiry.stats.media);
    },
  });
  new Counter({
    name: "mxcd_url_preview_expiry_batches_total",
    help: "Batches of the url-preview-expiry job this process committed",
    registers: [registry],
    collect() {
      this.reset();
      this.inc(expiry.stats.batches);
    },
  });
  new Counter({
    name: "mxcd_url_previews_served_total",
    help: "URL previews answered with 200 (from the cache or freshly fetched)",
    registers: [registry],
    collect() {
      this.reset();
      this.inc(source.stats.served);
    },
  });
  new Counter({
    name: "mxcd_url_preview_cache_hits_total",
    help: "URL preview requests answered from the database cache (previews and cached failures)",
    registers: [registry],
    collect() {
      this.reset();
      this.inc(source.stats.cacheHits);
    },
  });
  new Counter({
    name: "mxcd_url_preview_flight_joins_total",
    help: "URL preview requests that shared a fetch already under way in this process",
    registers: [registry],
    collect() {
      this.reset();
      this.inc(source.stats.flightJoins);
    },
  });
  new Counter({
    name: "mxcd_url_preview_fetch_failures_total",
    help: "URL preview fetches (pages, redirects, oEmbed, images) that failed, by kind",
    labelNames: ["kind"],
    registers: [registry],
    collect() {
      this.reset();
      for (const [kind, count] of source.stats.fetchFailures) this.inc({ kind }, count);
    },
  });
}
