/**
 * The shape of a URL preview (OpenGraph keys, as `/preview_url` answers
 * them) and the rules every preview passes through before it is served.
 */

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
      if (value === "" || value.length > OG_VALUE_MAX_CHARS) continue;
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
 * `raw` resolved against `base` when it is an absolute or relative http(s)
 * URL, as a normalised absolute URL; undefined for anything else (`data:`,
 * `javascript:`, unparsable). Synapse also accepts `data:` images; mxcd
 * fetches only http(s), through the one guarded outbound client.
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
