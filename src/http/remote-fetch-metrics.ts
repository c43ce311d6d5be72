/**
 * Gauges of the remote media cache's in-memory state, read when scraped:
 * `mxcd_remote_fetch_failures_remembered` (bounded by
 * `remote_media_failure_cache_size`), `mxcd_remote_fetches_in_flight`,
 * `mxcd_remote_fetch_tee_buffered_bytes` (bytes waiting for slow first
 * clients) and `mxcd_remote_fetch_warnings_suppressed`.
 */
import { Gauge, type Registry } from "prom-client";
import type { RemoteFetchStats } from "../media/remote-media-service.js";

/** Something that reports the figures (RemoteMediaService). */
export interface RemoteFetchStatsSource {
  readonly stats: RemoteFetchStats;
}

const GAUGES: readonly [string, string, keyof RemoteFetchStats][] = [
  [
    "mxcd_remote_fetch_failures_remembered",
    "Failed remote media fetches remembered (answered without fetching again)",
    "failuresRemembered",
  ],
  ["mxcd_remote_fetches_in_flight", "Remote media fetches under way", "inFlight"],
  [
    "mxcd_remote_fetch_tee_buffered_bytes",
    "Bytes of remote fetches buffered in memory for live clients",
    "teeBufferedBytes",
  ],
  [
    "mxcd_remote_fetch_warnings_suppressed",
    "Remote fetch failure warnings held back by the log rate limit since the last one logged",
    "warningsSuppressed",
  ],
];

/** Adds the gauges to `registry`. */
export function registerRemoteFetchMetrics(
  registry: Registry,
  source: RemoteFetchStatsSource,
): void {
  for (const [name, help, field] of GAUGES) {
    new Gauge({
      name,
      help,
      registers: [registry],
      collect() {
        this.set(source.stats[field]);
      },
    });
  }
}
