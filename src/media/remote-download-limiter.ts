/**
 * Download rate limiting of uncached remote media (Synapse's
 * `remote_media_download_burst_count` / `remote_media_download_per_second`,
 * synapse/http/matrixfederationclient.py): a leaky bucket of bytes per
 * downloader — the user when the request is authenticated, else the client
 * IP — holding up to `burstBytes` and leaking `bytesPerSecond`.
 *
 * Unlike Synapse's (per worker) the bucket is shared by every process on
 * the database (rate-limit-bucket-repository.ts: one atomic statement per
 * charge), so a load balancer spreading requests does not multiply it.
 *
 * The fetch of one item is charged in three steps (RemoteMediaService):
 * 1. before the request is sent: `checkHeadroom` refuses when not even
 *    `headroomBytes` (1 MiB, as Synapse) fit now, so a refused downloader
 *    costs no remote connection;
 * 2. when the remote's headers arrive: `charge` the declared length, refused
 *    (the body is then not read) when it does not fit;
 * 3. after the body: `record` whatever arrived beyond what was charged (all
 *    of it when no length was declared, Synapse #17439), never refused.
 *
 * A refusal is 429 M_LIMIT_EXCEEDED (never 500: MMR #643) with
 * `retry_after_ms` = when the charge would fit (Synapse sends none). A
 * declared length larger than the whole burst never fits: 429 without
 * `retry_after_ms`.
 *
 * Bounded: rows exist only for buckets not yet leaked empty; each process
 * prunes the empty ones at most once per `PRUNE_INTERVAL_MS`, after a charge.
 */
import { MatrixError } from "../domain/matrix-error.js";
import type { Logger } from "../logging/logger.js";
import type { RateLimitBucketRepository } from "../repositories/rate-limit-bucket-repository.js";
import type { LimiterName, RateLimitRefusals } from "../util/rate-limit-refusals.js";

export interface RemoteDownloadRateSettings {
  /** `remote_media_download_burst_count`: the bucket's size in bytes. */
  readonly burstBytes: number;
  /** `remote_media_download_per_second`: bytes leaked per second. */
  readonly bytesPerSecond: number;
}

/** Who downloads: `user:@alice:example.org` or `ip:192.0.2.1` (see `downloaderKey`). */
export type DownloaderKey = string;

/** The bucket key of a request: its user when authenticated, else its client address. */
export function downloaderKey(userId: string | undefined, clientAddress: string): DownloaderKey {
  return userId === undefined ? `ip:${clientAddress}` : `user:${userId}`;
}

/** The charges RemoteMediaService makes for one uncached fetch (see the note above). */
export interface RemoteDownloadCharges {
  checkHeadroom(key: DownloaderKey): Promise<void>;
  charge(key: DownloaderKey, bytes: number): Promise<void>;
  record(key: DownloaderKey, bytes: number): Promise<void>;
}

/** The bucket rows' `limiter` and the refusal counter's label: one name for both. */
const LIMITER: LimiterName = "remote_media_download";
/** Synapse checks that 1 MiB still fits before it sends the request. */
const HEADROOM_BYTES = 1024 * 1024;
const PRUNE_INTERVAL_MS = 60_000;

export class RemoteDownloadLimiter implements RemoteDownloadCharges {
  readonly #msPerByte: number;
  readonly #windowMs: number;
  #lastPrune = 0;

  constructor(
    settings: RemoteDownloadRateSettings,
    private readonly buckets: Pick<RateLimitBucketRepository, "charge" | "emptyAt" | "prune">,
    private readonly refusals: Pick<RateLimitRefusals, "count">,
    private readonly logger: Logger,
    private readonly now: () => number = Date.now,
  ) {
    this.#msPerByte = 1000 / settings.bytesPerSecond;
    this.#windowMs = settings.burstBytes * this.#msPerByte;
  }

  /** 429 unless 1 MiB (or the whole burst, if smaller) would fit now; charges nothing. */
  async checkHeadroom(key: DownloaderKey): Promise<void> {
    const costMs = Math.min(HEADROOM_BYTES * this.#msPerByte, this.#windowMs);
    const nowMs = this.now();
    const emptyAt = await this.buckets.emptyAt(LIMITER, key);
    const wait = this.#waitMs(emptyAt, costMs, nowMs);
    if (wait > 0) throw this.#refuse(wait);
  }

  /** Charges `bytes` declared by the remote; 429 (nothing charged) when they do not fit now. */
  async charge(key: DownloaderKey, bytes: number): Promise<void> {
    const costMs = bytes * this.#msPerByte;
    const nowMs = this.now();
    const charged = await this.buckets.charge(LIMITER, key, {
      costMs,
      windowMs: this.#windowMs,
      nowMs,
      force: false,
    });
    this.#maybePrune(nowMs);
    if (charged) return;
    if (costMs > this.#windowMs) throw this.#refuse(undefined);
    const emptyAt = await this.buckets.emptyAt(LIMITER, key);
    throw this.#refuse(Math.max(1, this.#waitMs(emptyAt, costMs, nowMs)));
  }

  /** Charges `bytes` that already arrived, even past the burst (never refuses). */
  async record(key: DownloaderKey, bytes: number): Promise<void> {
    if (bytes <= 0) return;
    const nowMs = this.now();
    await this.buckets.charge(LIMITER, key, {
      costMs: bytes * this.#msPerByte,
      windowMs: this.#windowMs,
      nowMs,
      force: true,
    });
    this.#maybePrune(nowMs);
  }

  /** Milliseconds until `costMs` fits in a bucket empty at `emptyAt`; ≤ 0 when it fits now. */
  #waitMs(emptyAt: number | undefined, costMs: number, nowMs: number): number {
    const start = Math.max(emptyAt ?? nowMs, nowMs);
    return start + costMs - (nowMs + this.#windowMs);
  }

  #refuse(waitMs: number | undefined): MatrixError {
    this.refusals.count(LIMITER);
    const extra = waitMs === undefined ? {} : { retry_after_ms: Math.ceil(waitMs) };
    return new MatrixError(
      "M_LIMIT_EXCEEDED",
      "Requested file size exceeds ratelimits",
      429,
      extra,
    );
  }

  /** Drops emptied buckets now and then; a failure only delays it (logged). */
  #maybePrune(nowMs: number): void {
    if (nowMs - this.#lastPrune < PRUNE_INTERVAL_MS) return;
    this.#lastPrune = nowMs;
    this.buckets.prune(nowMs).catch((error: unknown) => {
      this.logger.warn({ err: error }, "pruning rate-limit buckets failed");
    });
  }
}
