/**
 * `mxcd_rate_limited_total{limiter}`: requests refused with 429
 * M_LIMIT_EXCEEDED by each media rate limit (`rc_media_create`,
 * `max_pending_media_uploads`, `remote_media_download`) in this process.
 */
import { Counter, type Registry } from "prom-client";
import type { RateLimitRefusals } from "../util/rate-limit-refusals.js";

export function registerRateLimitMetrics(registry: Registry, refusals: RateLimitRefusals): void {
  new Counter({
    name: "mxcd_rate_limited_total",
    help: "Requests refused with 429 M_LIMIT_EXCEEDED by each media rate limit",
    labelNames: ["limiter"] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const [limiter, count] of Object.entries(refusals.counts)) this.inc({ limiter }, count);
    },
  });
}
