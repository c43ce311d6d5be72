/**
 * The preview-cache phase of `mxcd import synapse`: Synapse's
 * `local_media_repository_url_cache` rows that have not expired become
 * `url_preview_cache` entries (migration 0008), so previews Synapse fetched
 * are answered from the cache by mxcd until they expire, as Synapse would.
 *
 * The mapping (docs/import.md "The preview cache"):
 * - `url`: Synapse's key, normalised as mxcd's `/preview_url` normalises a
 *   request (parsePreviewUrl: http(s) only, fragment dropped); a row whose
 *   URL does not parse is skipped;
 * - `language`: mxcd's `url_preview_accept_language`, joined, as mxcd keys
 *   its own entries (Synapse's cache has no language: it used its own
 *   setting for every fetch);
 * - `download_ts`, `expires_ts`: as they are (both absolute, milliseconds);
 *   `bucket_ts` is the hour of `download_ts`; rows already expired are not
 *   read at all;
 * - `og`: Synapse's OpenGraph JSON text as it is, status 200; a row without
 *   an object `og`, or whose `response_code` is not 2xx, is skipped (mxcd's
 *   failures live one minute; there is nothing to keep);
 * - `media_id`: mxcd's column names the preview's *image* (url-cache media),
 *   Synapse's names the downloaded page or image; so it is the id of the
 *   `og:image` when that is an `mxc://<server_name>/…` of this server, else
 *   null. Synapse's own `media_id` column is not kept.
 */
import type { Tx } from "../db/database.js";
import { parsePreviewUrl } from "../previews/url-preview-service.js";
import type { ImportedPreviewRepository } from "../repositories/imported-preview-repository.js";
import type { CachedPreview } from "../repositories/url-preview-repository.js";
import { count, type ImportTally } from "./import-report.js";
import type { PreviewKey, SynapsePreview, SynapseSource } from "./synapse-source.js";

const HOUR_MS = 3_600_000;

/** How imported entries are keyed: mxcd's preview language and server name. */
export interface PreviewCacheSettings {
  /** `url_preview_accept_language`, joined with ", " (mxcd's cache key). */
  readonly language: string;
  readonly serverName: string;
}

/** The start of the walk. */
export const FIRST_PREVIEW_KEY: PreviewKey = { url: "", downloadTs: 0, mediaId: "" };

/** The mxcd entry for a Synapse row, or undefined when it is skipped (see above). */
function previewEntry(
  row: SynapsePreview,
  settings: PreviewCacheSettings,
): CachedPreview | undefined {
  if (row.og === null || row.responseCode === null || Math.floor(row.responseCode / 100) !== 2) {
    return undefined;
  }
  let url: string;
  let og: unknown;
  try {
    url = parsePreviewUrl(row.url);
    og = JSON.parse(row.og);
  } catch {
    return undefined;
  }
  if (og === null || typeof og !== "object" || Array.isArray(og)) return undefined;
  const image = (og as Record<string, unknown>)["og:image"];
  const prefix = `mxc://${settings.serverName}/`;
  const mediaId =
    typeof image === "string" && image.startsWith(prefix) ? image.slice(prefix.length) : null;
  return {
    url,
    language: settings.language,
    bucketTs: row.downloadTs - (row.downloadTs % HOUR_MS),
    downloadTs: row.downloadTs,
    expiresTs: row.expiresTs,
    og: row.og,
    status: 200,
    errcode: null,
    error: null,
    mediaId: mediaId === "" || mediaId?.includes("/") ? null : mediaId,
  };
}

/**
 * Imports (or, with `skip`, only counts as skipped) the next page of
 * unexpired preview-cache rows after `after`; returns the new position and
 * how many rows were read (fewer than `limit`: the phase is finished).
 */
export async function importPreviewPage(
  tx: Tx,
  deps: { source: SynapseSource; previews: ImportedPreviewRepository },
  page: { after: PreviewKey; limit: number; now: number; skip: boolean },
  settings: PreviewCacheSettings,
  tally: ImportTally,
): Promise<{ last: PreviewKey; read: number }> {
  const rows = await deps.source.previewPage(page.after, page.now, page.limit);
  for (const row of rows) {
    const entry = page.skip ? undefined : previewEntry(row, settings);
    if (!entry) {
      count(tally, "preview_cache", "skipped");
      continue;
    }
    count(tally, "preview_cache", (await deps.previews.insert(tx, entry)) ? "imported" : "present");
  }
  const last = rows.at(-1);
  return {
    last: last ? { url: last.url, downloadTs: last.downloadTs, mediaId: last.mediaId } : page.after,
    read: rows.length,
  };
}
