/**
 * The notification bus's channel names, in a module of their own so the
 * PostgreSQL bus can use them without importing the bus factory (no cycle).
 */

/** mxcd's channels (PostgreSQL channel names, so lower-case identifiers). */
export const CHANNELS = [
  /** An async upload's bytes are stored; payload: the media id. */
  "mxcd_upload_done",
  /** Quarantine feed records committed; payload: empty. */
  "mxcd_feed",
  /** A remote fetch ended (cached or failed); payload: `<origin>/<mediaId>`. */
  "mxcd_remote_media",
  /** A thumbnail generation ended; payload: its flight name. */
  "mxcd_thumbnail",
  /** A URL preview fetch ended (cached or failed); payload: SHA-256 of its cache key. */
  "mxcd_url_preview",
  /** Media rows or thumbnail rows changed (src/cache/media-changes.ts); payload: lines of changes. */
  "mxcd_media_changed",
  /** Access tokens deleted or users changed (src/cache/token-changes.ts); payload: one change. */
  "mxcd_tokens_changed",
] as const;

export type Channel = (typeof CHANNELS)[number];
