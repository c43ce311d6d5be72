/**
 * Builds the stored-hash machinery from the config (docs/trust-and-safety.md
 * "Stored hashes"): the PDQ hashing queue and the `media-hash-backfill`
 * job over it. The server (src/app.ts) and `mxcd jobs` both build it here,
 * so the CLI runs the job exactly as the server would.
 */
import type { Config } from "../config/config-schema.js";
import type { Database } from "../db/database.js";
import { hashImage } from "../hashing/pdq-image.js";
import { MediaHashBackfillJob } from "../jobs/media-hash-backfill-job.js";
import type { Logger } from "../logging/logger.js";
import { MediaHashRepository } from "../repositories/media-hash-repository.js";
import type { BlobStore } from "../storage/blob-store.js";
import {
  type DecodeSlots,
  HASH_QUEUE_SIZE,
  MediaHashingService,
  PDQ_MAX_SOURCE_BYTES,
  type PdqHasher,
} from "./media-hashing-service.js";
import { type PdqRecordedHook, withPdqRecordedHook } from "./pdq-recorded-hook.js";

export interface MediaHashingDeps {
  readonly database: Database;
  readonly store: Pick<BlobStore, "read">;
  /** The Thumbnailer's slots (`max_thumbnail_concurrency`), shared with thumbnailing. */
  readonly slots: DecodeSlots;
  readonly logger: Logger;
  /** The PDQ image hasher; default `hashImage` (tests pass a fake). */
  readonly hasher?: PdqHasher;
  /** Told every recorded PDQ hash after its commit (near-duplicate quarantine). */
  readonly onPdqRecorded?: PdqRecordedHook;
}

export function createMediaHashing(
  config: Config,
  deps: MediaHashingDeps,
): { service: MediaHashingService; backfill: MediaHashBackfillJob } {
  const repository = new MediaHashRepository(deps.database);
  const hashes = deps.onPdqRecorded
    ? withPdqRecordedHook(repository, deps.onPdqRecorded, deps.logger)
    : repository;
  const service = new MediaHashingService(
    {
      maxImagePixels: config.max_image_pixels,
      maxSourceBytes: PDQ_MAX_SOURCE_BYTES,
      timeoutMs: config.thumbnail_timeout,
      maxQueued: HASH_QUEUE_SIZE,
      workers: config.max_thumbnail_concurrency,
    },
    deps.store,
    deps.slots,
    deps.hasher ??
      ((input, options) =>
        hashImage(input, { ...options, decodeMinSide: config.pdq_decode_min_side })),
    hashes,
    deps.logger,
  );
  const backfill = new MediaHashBackfillJob({ hashes, hashing: service, logger: deps.logger });
  return { service, backfill };
}
