/**
 * Synapse's `rc_media_create` (synapse/rest/media/create_resource.py): how
 * often one user may reserve a media id with `POST /_matrix/media/v1/create`,
 * a leaky bucket per user id (util/rate-limiter.ts). A refusal is 429
 * M_LIMIT_EXCEEDED with `retry_after_ms` (and `Retry-After`, set where errors
 * become responses). Allowed creates are counted, refused ones are not (as
 * Synapse).
 *
 * Per process, as Synapse's limiters are per worker: behind a load balancer
 * a user gets up to one burst per process. Application services are not
 * exempt: a token's owner does not say whether it is an appservice (attached
 * mode only sees whoami), so mxcd cannot honour `rate_limited: false`.
 */
import { MatrixError } from "../domain/matrix-error.js";
import type { RateLimitRefusals } from "../util/rate-limit-refusals.js";
import { RateLimiter, type RateLimitSettings } from "../util/rate-limiter.js";

/** Users tracked at once (about 100 bytes each); the least recently seen go first. */
const MAX_USERS = 100_000;

export class MediaCreateRateLimit {
  readonly #limiter: RateLimiter;

  constructor(
    settings: RateLimitSettings,
    private readonly refusals: RateLimitRefusals,
    now: () => number = Date.now,
  ) {
    this.#limiter = new RateLimiter(settings, MAX_USERS, now);
  }

  /** Counts one create by `userId`; 429 M_LIMIT_EXCEEDED when over `rc_media_create`. */
  check(userId: string): void {
    const decision = this.#limiter.check(userId);
    if (decision.allowed) return;
    this.refusals.count("rc_media_create");
    throw new MatrixError("M_LIMIT_EXCEEDED", "Too Many Requests", 429, {
      retry_after_ms: decision.retryAfterMs,
    });
  }
}
