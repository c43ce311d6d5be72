/**
 * Builds the `blur-preview-backfill` job (blur-preview-backfill-job.ts)
 * from the config: undefined when `enable_blur_preview_backfill` is off.
 * The server (src/app.ts) passes its thumbnailer, so the job shares its
 * decode slots; `mxcd jobs` builds a thumbnailer of the same limits.
 */
import type { Config } from "../config/config-schema.js";
import type { Database } from "../db/database.js";
import type { Logger } from "../logging/logger.js";
import { PDQ_MAX_SOURCE_BYTES } from "../media/media-hashing-service.js";
import { BlurPreviewRepository } from "../repositories/blur-preview-repository.js";
import type { BlobStore } from "../storage/blob-store.js";
import type { Thumbnailer } from "../thumbnails/thumbnailer.js";
import { BlurPreviewBackfillJob } from "./blur-preview-backfill-job.js";

/**
 * Largest original the job reads into memory: the bound the PDQ hashing of
 * the same originals already uses (media-hashing-service.ts).
 */
export const BLUR_PREVIEW_MAX_SOURCE_BYTES = PDQ_MAX_SOURCE_BYTES;

export interface BlurPreviewBackfillParts {
  readonly database: Database;
  readonly store: Pick<BlobStore, "read">;
  readonly thumbnailer: Thumbnailer;
  readonly logger: Logger;
  /** The clock (tests); default Date.now. */
  readonly now?: () => number;
}

export function createBlurPreviewBackfill(
  config: Pick<Config, "enable_blur_preview_backfill">,
  parts: BlurPreviewBackfillParts,
): BlurPreviewBackfillJob | undefined {
  if (!config.enable_blur_preview_backfill) return undefined;
  const repository = new BlurPreviewRepository(parts.database);
  return new BlurPreviewBackfillJob({
    previews: repository,
    record: (tx, mediaId, preview) => repository.record(tx, mediaId, preview),
    store: parts.store,
    thumbnailer: parts.thumbnailer,
    maxSourceBytes: BLUR_PREVIEW_MAX_SOURCE_BYTES,
    logger: parts.logger,
    ...(parts.now && { now: parts.now }),
  });
}
