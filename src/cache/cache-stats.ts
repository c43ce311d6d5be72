/**
 * Hit, miss and invalidation counts of one cache, read by /metrics
 * (`mxcd_cache_requests_total{cache,result}`,
 * `mxcd_cache_invalidations_total{cache,source}`; cache-metrics.ts).
 */
import type { ChangeSource } from "./change-signal.js";

export class CacheStats {
  hits = 0;
  /** Look-ups that read the database (one per load). */
  misses = 0;
  /** Look-ups that missed and joined a load of the same key already in flight (no read of their own). */
  shared = 0;
  /** Invalidations received, by where the change was made. */
  readonly invalidations: Record<ChangeSource, number> = { local: 0, remote: 0 };
}
