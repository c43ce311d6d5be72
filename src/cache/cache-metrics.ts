/**
 * The caches' counters on /metrics, read from their `CacheStats` when
 * scraped: `mxcd_cache_requests_total{cache,result="hit"|"miss"|"shared"}`
 * (`shared`: a miss that joined another's database read of the key) and
 * `mxcd_cache_invalidations_total{cache,source="local"|"remote"}` (source:
 * the change was made by this process, or announced by another one).
 */
import { Counter, type Registry } from "prom-client";
import type { CacheStats } from "./cache-stats.js";

/** Adds both counters to `registry`, one `cache` label value per entry of `caches`. */
export function registerCacheMetrics(
  registry: Registry,
  caches: Readonly<Record<string, CacheStats>>,
): void {
  new Counter({
    name: "mxcd_cache_requests_total",
    help: "Cache look-ups, by cache and result (hit, miss: read the database, shared: joined a read in flight)",
    labelNames: ["cache", "result"],
    registers: [registry],
    collect() {
      this.reset();
      for (const [cache, stats] of Object.entries(caches)) {
        this.inc({ cache, result: "hit" }, stats.hits);
        this.inc({ cache, result: "miss" }, stats.misses);
        this.inc({ cache, result: "shared" }, stats.shared);
      }
    },
  });
  new Counter({
    name: "mxcd_cache_invalidations_total",
    help: "Cache invalidations received, by cache and where the change was made",
    labelNames: ["cache", "source"],
    registers: [registry],
    collect() {
      this.reset();
      for (const [cache, stats] of Object.entries(caches)) {
        for (const source of ["local", "remote"] as const) {
          this.inc({ cache, source }, stats.invalidations[source]);
        }
      }
    },
  });
}
