/**
 * PDQ hashes of image media, computed after admission and off the request
 * path (docs/trust-and-safety.md "Stored hashes"); MD5 of stored blobs for
 * the backfill (uploads get theirs while streaming, UploadMeter).
 *
 * Design note.
 * - A bounded in-process queue: `enqueue` after an upload, async upload,
 *   remote fetch or URL-preview image is committed. At most `maxQueued`
 *   items wait; beyond that an item is dropped (counted) and left to the
 *   `media-hash-backfill` job, as is everything queued when the process
 *   dies: the row's `pdq_status` stays null, which is the job's work list.
 * - At most `workers` items are taken off the queue at once, and each
 *   hashes holding one of the Thumbnailer's `max_thumbnail_concurrency`
 *   slots (`withSlot`), so hashing and thumbnailing together never decode
 *   more images at once than the limit, and thumbnail requests wait behind
 *   at most `workers` hashes.
 * - Memory: the original is read through the blob store (filesystem or S3)
 *   only while holding a slot, and only up to `maxSourceBytes` (the size
 *   cap, 64 MiB by default): a larger item is not read at all (its row says
 *   so) and a stream that runs past the cap is cut off. Only the sniffed
 *   image formats the thumbnailer decodes reach the hasher, which enforces
 *   `max_image_pixels` from the header before decoding.
 * - Failures never escape: a hasher that throws, returns garbage or runs
 *   past `timeoutMs` (`thumbnail_timeout`) gives "no hash" with the reason
 *   stored in `pdq_reason` and a warning logged. A timed-out hasher gives
 *   its slot back (its work cannot be cancelled; libvips' own time-out ends
 *   a real decode).
 */
import { createHash } from "node:crypto";
import type { Readable } from "node:stream";
import {
  isPdqCandidate,
  NOT_AN_IMAGE,
  outcomePdqColumns,
  type PdqOutcome,
} from "../domain/media-hashes.js";
import type { Logger } from "../logging/logger.js";
import type { HashSubject, MediaHashRepository } from "../repositories/media-hash-repository.js";
import { BlobNotFoundError, type BlobStore } from "../storage/blob-store.js";
import { localMediaKey, remoteContentKey } from "../storage/media-paths.js";
import { sniffImageFormat } from "../thumbnails/thumbnailer.js";

/** The PDQ image hasher's signature (src/hashing/pdq-image.ts `hashImage`). */
export type PdqHasher = (
  input: Buffer | string,
  options: { maxImagePixels: number },
) => Promise<PdqOutcome>;

/** The slice of the Thumbnailer whose slots hashing shares. */
export interface DecodeSlots {
  withSlot<T>(fn: () => Promise<T>, signal?: AbortSignal): Promise<T>;
}

/** Default size cap: larger originals get no PDQ hash (reason stored). */
export const PDQ_MAX_SOURCE_BYTES = 64 * 1024 * 1024;

/** Default bound of the queue: items beyond it are left to the backfill job. */
export const HASH_QUEUE_SIZE = 1000;

export interface MediaHashingSettings {
  /** `max_image_pixels`, handed to the hasher. */
  readonly maxImagePixels: number;
  /** Originals larger than this are not read: no hash, reason stored. */
  readonly maxSourceBytes: number;
  /** `thumbnail_timeout`: a hash running longer gives "no hash, timed out". */
  readonly timeoutMs: number;
  /** Items waiting at most (then dropped, left to the backfill). */
  readonly maxQueued: number;
  /** Items hashed at once (each also holds a decode slot). */
  readonly workers: number;
}

/** A media item to hash: which row, where its bytes are, what it claims to be. */
export interface HashItem {
  readonly subject: HashSubject;
  /** The blob store key of its bytes. */
  readonly key: string;
  readonly mediaType: string | null;
  /** Bytes the row says it has (the size cap is checked before reading). */
  readonly mediaLength: number;
}

/** Figures for /metrics and tests. */
export interface MediaHashingStats {
  queued: number;
  running: number;
  /** Items dropped because the queue was full. */
  dropped: number;
  /** Outcomes recorded, by kind. */
  hashed: number;
  noHash: number;
}

export class MediaHashingService {
  readonly #queue: HashItem[] = [];
  readonly #running = new Set<Promise<void>>();
  readonly stats: MediaHashingStats = { queued: 0, running: 0, dropped: 0, hashed: 0, noHash: 0 };

  constructor(
    private readonly settings: MediaHashingSettings,
    private readonly store: Pick<BlobStore, "read">,
    private readonly slots: DecodeSlots,
    private readonly hasher: PdqHasher,
    private readonly hashes: Pick<MediaHashRepository, "record">,
    private readonly logger: Logger,
  ) {}

  /** Queues a newly admitted item for its PDQ hash; non-images and a full queue are ignored. */
  enqueue(item: HashItem): void {
    if (!isPdqCandidate(item.mediaType)) return;
    if (this.#queue.length >= this.settings.maxQueued) {
      this.stats.dropped += 1;
      return;
    }
    this.#queue.push(item);
    this.stats.queued = this.#queue.length;
    this.#pump();
  }

  /**
   * Shutdown: drops what still waits (left to the backfill job, its rows
   * still say "not computed") and waits for the items being hashed, each
   * bounded by the time-out.
   */
  async stop(): Promise<void> {
    this.#queue.length = 0;
    this.stats.queued = 0;
    while (this.#running.size > 0) await Promise.all(this.#running);
  }

  /**
   * The PDQ outcome of `item` (decode slot, size cap, time-out, see the
   * design note); never throws.
   */
  async pdqOf(item: HashItem): Promise<PdqOutcome> {
    if (!isPdqCandidate(item.mediaType)) return none(NOT_AN_IMAGE);
    if (item.mediaLength > this.settings.maxSourceBytes) return none(this.#overCap());
    try {
      return await this.slots.withSlot(async () => {
        const bytes = await this.#readCapped(item.key);
        if (bytes === undefined) return none(this.#overCap());
        if (!sniffImageFormat(bytes)) return none("not a supported image format");
        return this.#hashWithTimeout(bytes);
      });
    } catch (error) {
      if (error instanceof BlobNotFoundError) return none("bytes missing from the store");
      this.logger.warn({ err: error, key: item.key }, "PDQ hashing failed");
      return none(`hashing failed: ${errorMessage(error)}`);
    }
  }

  /** Lowercase hex MD5 of a stored blob, streamed (never held in memory). */
  async md5Of(key: string): Promise<string> {
    const hash = createHash("md5");
    for await (const chunk of await this.store.read(key)) hash.update(chunk as Buffer);
    return hash.digest("hex");
  }

  #pump(): void {
    while (this.#running.size < this.settings.workers && this.#queue.length > 0) {
      const item = this.#queue.shift()!;
      const work: Promise<void> = this.#hashAndRecord(item).finally(() => {
        this.#running.delete(work);
        this.stats.running = this.#running.size;
        this.#pump();
      });
      this.#running.add(work);
    }
    this.stats.queued = this.#queue.length;
    this.stats.running = this.#running.size;
  }

  async #hashAndRecord(item: HashItem): Promise<void> {
    const outcome = await this.pdqOf(item);
    try {
      await this.hashes.record(item.subject, outcomePdqColumns(outcome));
      if (outcome.hash === null) this.stats.noHash += 1;
      else this.stats.hashed += 1;
    } catch (error) {
      // The row keeps `pdq_status` null: the backfill job retries it.
      this.logger.warn({ err: error, key: item.key }, "could not record a PDQ hash");
    }
  }

  /** The blob's bytes, or undefined when it runs past the size cap (the stream is then cut). */
  async #readCapped(key: string): Promise<Buffer | undefined> {
    const stream: Readable = await this.store.read(key);
    const chunks: Buffer[] = [];
    let size = 0;
    try {
      for await (const chunk of stream) {
        size += (chunk as Buffer).length;
        if (size > this.settings.maxSourceBytes) return undefined;
        chunks.push(chunk as Buffer);
      }
    } finally {
      stream.destroy();
    }
    return Buffer.concat(chunks, size);
  }

  /** The hasher's outcome, or "timed out" after `timeoutMs`; a throw becomes a reason. */
  async #hashWithTimeout(bytes: Buffer): Promise<PdqOutcome> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<PdqOutcome>((resolve) => {
      timer = setTimeout(
        () => resolve(none(`hasher timed out after ${this.settings.timeoutMs} ms`)),
        this.settings.timeoutMs,
      );
    });
    const hashing = this.hasher(bytes, { maxImagePixels: this.settings.maxImagePixels }).catch(
      (error: unknown) => {
        this.logger.warn({ err: error }, "PDQ hasher failed");
        return none(`hasher failed: ${errorMessage(error)}`);
      },
    );
    try {
      const outcome = await Promise.race([hashing, timeout]);
      if (outcome.hash === null) {
        this.logger.info({ reason: outcome.reason }, "no PDQ hash for an image");
      }
      return outcome;
    } finally {
      clearTimeout(timer);
    }
  }

  #overCap(): string {
    return `larger than the ${this.settings.maxSourceBytes}-byte PDQ size cap`;
  }
}

/** The key of a hash subject's bytes. */
export function hashItemKey(
  subject: HashSubject,
  where: { urlCache: string | null; filesystemId: string | null },
): string {
  return subject.kind === "local"
    ? localMediaKey(subject.mediaId, where.urlCache)
    : remoteContentKey(subject.origin, where.filesystemId ?? "");
}

function none(reason: string): PdqOutcome {
  return { hash: null, quality: null, reason };
}

function errorMessage(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).slice(0, 150);
}
