/**
 * Where an imported Synapse item lives in mxcd's store, shared by the import
 * (synapse-import-job.ts) and `--verify` (import-verify.ts) so both name the
 * same keys. URL-preview media (a local row with `url_cache` set) lives under
 * url_cache/ and url_cache_thumbnails/ and is counted as its own kinds.
 * Key functions are returned unevaluated: they throw on an unsafe id, and
 * each caller decides what that means (a missing file, an item not imported).
 */
import {
  localContentKey,
  localThumbnailKey,
  remoteContentKey,
  remoteThumbnailKey,
  remoteThumbnailLegacyKey,
  urlCacheKey,
  urlCacheThumbnailKey,
} from "../storage/media-paths.js";
import type { SynapseLocalMedia, SynapseRemoteMedia, SynapseThumbnail } from "./synapse-source.js";

/** A local row's kinds and keys. */
export interface LocalPlacement {
  /** True for URL-preview media. */
  readonly preview: boolean;
  readonly kind: "local" | "url_cache";
  readonly thumbKind: "local_thumbnail" | "url_cache_thumbnail";
  /** The key of the media's bytes (throws on an unsafe id). */
  readonly contentKey: () => string;
  /** The key of one of its thumbnails (throws on an unsafe id). */
  readonly thumbnailKey: (t: SynapseThumbnail) => string;
}

export function localPlacement(
  row: Pick<SynapseLocalMedia, "mediaId" | "urlCache">,
): LocalPlacement {
  const preview = row.urlCache !== null;
  const thumbKey = preview ? urlCacheThumbnailKey : localThumbnailKey;
  return {
    preview,
    kind: preview ? "url_cache" : "local",
    thumbKind: preview ? "url_cache_thumbnail" : "local_thumbnail",
    contentKey: () => (preview ? urlCacheKey : localContentKey)(row.mediaId),
    thumbnailKey: (t) => thumbKey(t.mediaId, t.width, t.height, t.contentType, t.method),
  };
}

/** The key of a remote row's bytes (throws on an unsafe id). */
export function remoteKey(row: Pick<SynapseRemoteMedia, "origin" | "filesystemId">): string {
  return remoteContentKey(row.origin, row.filesystemId);
}

/**
 * A remote thumbnail's key and the legacy one (no `-method`) Synapse may
 * have stored it under; the thumbnail's own `filesystem_id` wins over the
 * media row's. Both throw on an unsafe id.
 */
export function remoteThumbnailKeys(
  row: Pick<SynapseRemoteMedia, "origin" | "filesystemId">,
  t: SynapseThumbnail,
): { key: () => string; legacyKey: () => string } {
  const fsId = t.filesystemId ?? row.filesystemId;
  return {
    key: () => remoteThumbnailKey(row.origin, fsId, t.width, t.height, t.contentType, t.method),
    legacyKey: () => remoteThumbnailLegacyKey(row.origin, fsId, t.width, t.height, t.contentType),
  };
}

/** How a thumbnail is named in reports: `[origin/]mediaId WxH type method`. */
export function thumbnailItem(t: SynapseThumbnail): string {
  return `${t.origin === null ? "" : `${t.origin}/`}${t.mediaId} ${t.width}x${t.height} ${t.contentType} ${t.method}`;
}
