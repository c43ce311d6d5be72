/**
 * The shape of a URL preview (OpenGraph keys, as `/preview_url` answers
 * them) and the rules every preview passes through before it is served.
 */

import { isDataUrl } from "./data-url-image.js";

/** OpenGraph keys to values: strings from pages, numbers for sizes (as Synapse). */
export type OpenGraph = Record<string, string | number>;

/** Keys longer than this are dropped (Synapse `OG_TAG_NAME_MAXLEN`). */
export const OG_KEY_MAX_CHARS = 50;
/** Values longer than this, as strings, are dropped (Synapse `OG_TAG_VALUE_MAXLEN`). */
export const OG_VALUE_MAX_CHARS = 1000;

/**
 * A copy of `og` without overlong keys or values, without values that are
 * neither strings nor finite numbers, and without empty strings (Synapse
 * #6331/#6334: overlong values were a denial of service).
 */
export function capOpenGraph(og: Readonly<Record<string, unknown>>): OpenGraph {
  const capped: OpenGraph = {};
  for (const [key, value] of Object.entries(og)) {
    if (key.length === 0 || key.length > OG_KEY_MAX_CHARS) continue;
    if (typeof value === "string") {
      // An image's `data:` URL is replaced by the stored copy before the
      // preview is served (url-preview-service.ts), so the cap does not apply.
      const dataImage = key === "og:image" && isDataUrl(value);
      if (value === "" || (value.length > OG_VALUE_MAX_CHARS && !dataImage)) continue;
    } else if (typeof value !== "number" || !Number.isFinite(value)) {
      continue;
    } else if (String(value).length > OG_VALUE_MAX_CHARS) {
      continue;
    }
    capped[key] = value;
  }
  return capped;
}

/**
 * Where a preview's image comes from: a `data:` URL as it is (decoded and
 * stored like a fetched image, as Synapse does, #11767), else
 * `absoluteHttpUrl(raw, base)`.
 */
export function previewImageSource(raw: string, base?: string): string | undefined {
  return isDataUrl(raw) ? raw.trim() : absoluteHttpUrl(raw, base);
}

/**
 * `raw` resolved against `base` when it is an absolute or relative http(s)
 * URL, as a normalised absolute URL; undefined for anything else (`data:`,
 * `javascript:`, unparsable). Fetches are http(s) only, through the one
 * guarded outbound client; `data:` images go through previewImageSource.
 */
export function absoluteHttpUrl(raw: string, base?: string): string | undefined {
  const trimmed = raw.trim();
  if (trimmed === "") return undefined;
  let url: URL;
  try {
    url = base === undefined ? new URL(trimmed) : new URL(trimmed, base);
  } catch {
    return undefined;
  }
  return url.protocol === "http:" || url.protocol === "https:" ? url.href : undefined;
}
