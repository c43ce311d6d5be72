/**
 * How long URL-preview cache rows and their images live (docs/previews.md
 * "Expiry"); read by UrlPreviewService (which rows may answer a `ts`) and
 * the url-preview-expiry job (what it deletes). The guarantee: whatever
 * preview JSON mxcd hands out, the image it names outlives that moment by
 * at least 12 hours, and no image is deleted younger than two days
 * (Synapse's fixed lifetime, which ignores the rows that name it: #19010).
 */
const HOUR_MS = 3_600_000;

/** A preview row is kept this long after it expired (it may answer a `ts` meanwhile). */
export const CACHE_ROW_KEEP_MS = 24 * HOUR_MS;
/** A row answers a `ts` in the past only until this long after it expired. */
export const HISTORY_SERVE_MS = 12 * HOUR_MS;
/** No url-cache image is deleted younger than this (Synapse `IMAGE_CACHE_EXPIRY_MS`). */
export const MEDIA_MIN_AGE_MS = 48 * HOUR_MS;
