/**
 * What `local_media_repository.blur_preview` (migration 0018) holds: null
 * (not made yet), a `data:image/webp;base64,…` preview
 * (src/thumbnails/blur-preview.ts), or NO_BLUR_PREVIEW.
 */

/**
 * Stored in `blur_preview` when no preview can be made of the media (bytes
 * missing, not decodable, over a limit): the `blur-preview-backfill` job
 * (src/jobs/blur-preview-backfill-job.ts) then does not try it again. Not a
 * data: URL, so it can never be mistaken for a preview; the media listing
 * returns it as no preview.
 */
export const NO_BLUR_PREVIEW = "none";

/** The stored `blur_preview` value as a preview: null for none or NO_BLUR_PREVIEW. */
export function storedBlurPreview(stored: string | null): string | null {
  return stored === null || stored === NO_BLUR_PREVIEW ? null : stored;
}
