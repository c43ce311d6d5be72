/**
 * Counts of requests refused by each media rate limit, read by
 * `mxcd_rate_limited_total{limiter}` on /metrics (http/rate-limit-metrics.ts).
 * A fixed set of limiters, so the label set is bounded.
 */

/** The rate limits that answer 429 M_LIMIT_EXCEEDED (docs/media.md "Rate limits"). */
export type LimiterName = "rc_media_create" | "max_pending_media_uploads" | "remote_media_download";

export class RateLimitRefusals {
  readonly #counts: Record<LimiterName, number> = {
    rc_media_create: 0,
    max_pending_media_uploads: 0,
    remote_media_download: 0,
  };

  /** Counts one refusal by `limiter`. */
  count(limiter: LimiterName): void {
    this.#counts[limiter]++;
  }

  /** Refusals by each limiter since start. */
  get counts(): Readonly<Record<LimiterName, number>> {
    return { ...this.#counts };
  }
}
