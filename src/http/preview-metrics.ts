/**
 * URL-preview counters, read when scraped: `mxcd_url_previews_served_total`,
 * `mxcd_url_preview_cache_hits_total`, `mxcd_url_preview_flight_joins_total` and
 * `mxcd_url_preview_fetch_failures_total{kind}` (kinds: see
 * PreviewFailureKind; image and oEmbed failures that only drop a part of a
 * preview count too).
 */
import { Counter, type Registry } from "prom-client";
import type { UrlPreviewStats } from "../previews/url-preview-service.js";

export function registerPreviewMetrics(
  registry: Registry,
  source: { stats: UrlPreviewStats },
): void {
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
