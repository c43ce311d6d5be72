/**
 * A keyed rate limiter with Synapse's semantics (synapse/api/ratelimiting.py,
 * "leaky bucket as a meter"): each key has a bucket holding up to
 * `burstCount` actions that leaks at `perSecond`; an action is allowed when
 * it still fits. A bucket is kept as "actions since it was last empty" and
 * "when it was last empty", so nothing runs on a timer.
 *
 * Bounded by construction: at most `maxKeys` buckets. Buckets are kept in
 * least-recently-used order; a new key beyond the bound evicts the least
 * recently used one (an emptied bucket is the same as no bucket, so idle
 * keys go first in practice and lose nothing).
 */

export interface RateLimitSettings {
  /** Long-run actions per second a key may take. */
  readonly perSecond: number;
  /** Actions a key may take at once after a quiet spell. */
  readonly burstCount: number;
}

/** The verdict on one action. */
export interface RateLimitDecision {
  readonly allowed: boolean;
  /** When not allowed: milliseconds until one more action fits (≥ 1). */
  readonly retryAfterMs: number;
}

interface Bucket {
  actions: number;
  emptySince: number;
}

export class RateLimiter {
  readonly #buckets = new Map<string, Bucket>();

  /**
   * @param maxKeys the most keys tracked at once (≥ 1).
   * @param now clock in milliseconds (tests pass a fake one).
   */
  constructor(
    private readonly settings: RateLimitSettings,
    private readonly maxKeys: number,
    private readonly now: () => number = Date.now,
  ) {
    if (!Number.isInteger(maxKeys) || maxKeys < 1) {
      throw new RangeError(`rate limiter maxKeys must be an integer >= 1, got ${maxKeys}`);
    }
  }

  /** Keys tracked now (never more than `maxKeys`). */
  get size(): number {
    return this.#buckets.size;
  }

  /**
   * Whether `key` may act now. With `record` (the default) an allowed
   * action is counted; a refused one never is, as in Synapse.
   */
  check(key: string, record = true): RateLimitDecision {
    const now = this.now();
    const bucket = this.#current(key, now);
    const { perSecond, burstCount } = this.settings;
    const allowed = bucket.actions <= burstCount - 1 + this.#leaked(bucket, now);
    if (allowed && record) {
      bucket.actions++;
      this.#store(key, bucket);
    }
    if (allowed) return { allowed, retryAfterMs: 0 };
    // The moment the oldest action beyond the burst has leaked away.
    const allowedAt = bucket.emptySince + ((bucket.actions - burstCount + 1) / perSecond) * 1000;
    return { allowed, retryAfterMs: Math.max(1, Math.ceil(allowedAt - now)) };
  }

  /** Actions leaked from the bucket since it was last empty. */
  #leaked(bucket: Bucket, now: number): number {
    return ((now - bucket.emptySince) / 1000) * this.settings.perSecond;
  }

  /** The key's bucket, reset if it has leaked empty since last seen. */
  #current(key: string, now: number): Bucket {
    const bucket = this.#buckets.get(key);
    if (!bucket || bucket.actions - this.#leaked(bucket, now) <= 0) {
      return { actions: 0, emptySince: now };
    }
    return bucket;
  }

  /** Saves the bucket as most recently used, evicting the least recent past the bound. */
  #store(key: string, bucket: Bucket): void {
    this.#buckets.delete(key);
    this.#buckets.set(key, bucket);
    if (this.#buckets.size > this.maxKeys) {
      const oldest = this.#buckets.keys().next().value as string;
      this.#buckets.delete(oldest);
    }
  }
}
