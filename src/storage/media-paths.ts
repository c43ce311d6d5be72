/**
 * Blob keys in Synapse's media store layout (synapse-media-admin.md §6.4), used
 * as file paths under the media store root and, unchanged, as S3 object keys,
 * so an existing Synapse media store can be served or imported as it is.
 *
 * Design notes:
 * - Every component goes through `assertSafePathComponent` (Synapse's
 *   `_validate_path_component` rule, plus a length cap), so no key built here
 *   can climb out of the store whatever the caller passes.
 * - Ids are split `id[0:2]/id[2:4]/id[4:]`. Synapse throws for ids shorter than
 *   5 characters (an empty third piece). We file them instead under a `_short`
 *   directory, `<area>/_short/<id>`: ours are never that short (24 letters),
 *   but ids imported from elsewhere may be. `_short` is 6 characters long and
 *   a split id's first piece is always 2, so the two forms never collide.
 */

/** Thrown when a key component or key is unsafe to use as a path. */
export class UnsafePathError extends Error {
  constructor(readonly component: string) {
    // Cap what we echo: the input may be hostile and arbitrarily long.
    super(`unsafe path component: ${JSON.stringify(component.slice(0, 64))}`);
    this.name = "UnsafePathError";
  }
}

/** Letters, digits and `_ - . [ ] :` (the last three for IPv6 literals and ports). */
const SAFE_COMPONENT = /^[A-Za-z0-9_\-.[\]:]+$/;

/** NAME_MAX on Linux; a longer component could not be a file name anyway. */
const MAX_COMPONENT_LENGTH = 255;

/** Directory for ids too short for the 2/2/rest split (see the module note). */
const SHORT_ID_DIR = "_short";

/** `YYYY-MM-DD_rest`: the URL-preview media id form (Synapse's url_cache layout). */
const DATED_ID = /^(\d{4}-\d{2}-\d{2})_(.+)$/;

/**
 * Returns `component` if it is one safe path component: 1–255 characters, only
 * letters, digits and `_ - . [ ] :`, and not `.` or `..`. Throws
 * UnsafePathError otherwise.
 */
export function assertSafePathComponent(component: string): string {
  if (
    component.length > MAX_COMPONENT_LENGTH ||
    !SAFE_COMPONENT.test(component) ||
    component === "." ||
    component === ".."
  ) {
    throw new UnsafePathError(component);
  }
  return component;
}

/**
 * Returns `key` if it is a relative `/`-separated path of safe components (no
 * leading, trailing or doubled `/`). Every blob store checks its keys with it.
 */
export function assertSafeKey(key: string): string {
  for (const component of key.split("/")) assertSafePathComponent(component);
  return key;
}

/**
 * Returns `prefix` if it is usable with `BlobStore.list`: safe components
 * separated by `/`, where the last piece may be empty (a prefix ending in `/`)
 * or a partial name (`local_content/ab/cd/ef`). The empty prefix lists all.
 */
export function assertSafePrefix(prefix: string): string {
  const components = prefix.split("/");
  const last = components.pop() ?? "";
  for (const component of components) assertSafePathComponent(component);
  // A partial name only narrows a directory listing, so `.` or `..` is harmless
  // here; the characters still have to be safe.
  if (last !== "" && !SAFE_COMPONENT.test(last)) throw new UnsafePathError(last);
  return prefix;
}

/** A store's own key prefix (S3's `prefix`): empty, or a safe prefix ending in `/`. */
export function assertStorePrefix(prefix: string): string {
  if (prefix !== "" && !prefix.endsWith("/")) throw new UnsafePathError(prefix);
  return assertSafePrefix(prefix);
}

/** The directory pieces of an id: `[id[0:2], id[2:4], id[4:]]`, or `["_short", id]`. */
function idPieces(id: string): string[] {
  assertSafePathComponent(id);
  if (id.length < 5) return [SHORT_ID_DIR, id];
  return [id.slice(0, 2), id.slice(2, 4), id.slice(4)].map(assertSafePathComponent);
}

/** Synapse's thumbnail file name: `<w>-<h>-<top>-<sub>-<method>`, e.g. `32-32-image-png-crop`. */
function thumbnailFileName(
  width: number,
  height: number,
  contentType: string,
  method: string | null,
): string {
  for (const size of [width, height]) {
    if (!Number.isSafeInteger(size) || size < 0) throw new UnsafePathError(String(size));
  }
  const parts = contentType.split("/");
  if (parts.length !== 2) throw new UnsafePathError(contentType);
  const [top, sub] = parts.map(assertSafePathComponent);
  const name = `${width}-${height}-${top}-${sub}`;
  return assertSafePathComponent(method === null ? name : `${name}-${method}`);
}

/** `local_content/<id[0:2]>/<id[2:4]>/<id[4:]>`: the bytes of local media. */
export function localContentKey(mediaId: string): string {
  return ["local_content", ...idPieces(mediaId)].join("/");
}

/** `local_thumbnails/<2>/<2>/<rest>/`: the directory holding a local media's thumbnails. */
export function localThumbnailPrefix(mediaId: string): string {
  return `${["local_thumbnails", ...idPieces(mediaId)].join("/")}/`;
}

/** `local_thumbnails/<2>/<2>/<rest>/<w>-<h>-<top>-<sub>-<method>`; `image/png` gives `image-png`. */
export function localThumbnailKey(
  mediaId: string,
  width: number,
  height: number,
  contentType: string,
  method: string,
): string {
  return localThumbnailPrefix(mediaId) + thumbnailFileName(width, height, contentType, method);
}

/** `remote_content/<origin>/<2>/<2>/<rest>`, keyed by our `filesystem_id`, not the remote id. */
export function remoteContentKey(origin: string, filesystemId: string): string {
  return ["remote_content", assertSafePathComponent(origin), ...idPieces(filesystemId)].join("/");
}

/** `remote_thumbnail/<origin>/<2>/<2>/<rest>/` (singular "thumbnail", as in Synapse). */
export function remoteThumbnailPrefix(origin: string, filesystemId: string): string {
  const pieces = ["remote_thumbnail", assertSafePathComponent(origin), ...idPieces(filesystemId)];
  return `${pieces.join("/")}/`;
}

/** `remote_thumbnail/<origin>/<2>/<2>/<rest>/<w>-<h>-<top>-<sub>-<method>`. */
export function remoteThumbnailKey(
  origin: string,
  filesystemId: string,
  width: number,
  height: number,
  contentType: string,
  method: string,
): string {
  return (
    remoteThumbnailPrefix(origin, filesystemId) +
    thumbnailFileName(width, height, contentType, method)
  );
}

/**
 * The pre-method remote thumbnail name `<w>-<h>-<top>-<sub>`, which Synapse
 * still looks up for files written by old versions.
 */
export function remoteThumbnailLegacyKey(
  origin: string,
  filesystemId: string,
  width: number,
  height: number,
  contentType: string,
): string {
  return (
    remoteThumbnailPrefix(origin, filesystemId) +
    thumbnailFileName(width, height, contentType, null)
  );
}

/**
 * The pieces of a URL-preview id: `[date, rest]` for `YYYY-MM-DD_rest` (what
 * Synapse generates), else the usual split. Synapse's own test accepts any
 * character after the date and drops it; we require the `_` it always writes,
 * so two different ids can never map to one file.
 */
function urlCachePieces(mediaId: string): string[] {
  assertSafePathComponent(mediaId);
  const dated = DATED_ID.exec(mediaId);
  if (dated) return [dated[1]!, assertSafePathComponent(dated[2]!)];
  return idPieces(mediaId);
}

/** `url_cache/<YYYY-MM-DD>/<rest>` for dated ids, else `url_cache/<2>/<2>/<rest>`. */
export function urlCacheKey(mediaId: string): string {
  return ["url_cache", ...urlCachePieces(mediaId)].join("/");
}

/** `url_cache_thumbnails/<date>/<rest>/` (or the 2/2/rest form): a URL-preview's thumbnails. */
export function urlCacheThumbnailPrefix(mediaId: string): string {
  return `${["url_cache_thumbnails", ...urlCachePieces(mediaId)].join("/")}/`;
}

/** `url_cache_thumbnails/<date>/<rest>/<w>-<h>-<top>-<sub>-<method>`. */
export function urlCacheThumbnailKey(
  mediaId: string,
  width: number,
  height: number,
  contentType: string,
  method: string,
): string {
  return urlCacheThumbnailPrefix(mediaId) + thumbnailFileName(width, height, contentType, method);
}

/** The key of a local media row's bytes: `url_cache/…` for URL-preview media, else `local_content/…`. */
export function localMediaKey(mediaId: string, urlCache: string | null): string {
  return urlCache === null ? localContentKey(mediaId) : urlCacheKey(mediaId);
}
