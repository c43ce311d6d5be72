/**
 * oEmbed (https://oembed.com/): which provider endpoint answers for a URL,
 * and an oEmbed JSON response turned into OpenGraph keys as Synapse does
 * (media-gaps.md §1.5, Synapse `oembed.py` and `config/oembed.py`).
 *
 * Providers come in oembed.com's `providers.json` format: a list of
 * `{provider_name, provider_url, endpoints: [{schemes, url, formats?,
 * discovery?}]}`. A scheme is a URL glob: its scheme must be http or https;
 * `*` in the host stands for one label (`[a-zA-Z0-9_-]+`), anywhere else
 * for one or more characters; the whole URL must match. Endpoints that do
 * not offer JSON (`formats` without `json`, or a URL ending in `.xml`) and
 * endpoints without schemes (discovery only) are skipped, as in Synapse.
 *
 * The response is hostile input: it is parsed within a byte limit, and every
 * field is checked for its type and value before it is used.
 */
import { decodeHTML } from "entities";
import { z } from "zod";
import { exceedsJsonDepth } from "../domain/json-depth.js";
import { DEFAULT_OEMBED_PROVIDERS } from "./default-oembed-providers.js";
import { attributeImageSource, summarizeHtmlFragment } from "./html-opengraph.js";
import { absoluteHttpUrl, capOpenGraph, type OpenGraph, previewImageSource } from "./open-graph.js";

const endpointSchema = z.object({
  schemes: z.array(z.string()).optional(),
  url: z.string(),
  formats: z.array(z.string()).optional(),
  discovery: z.boolean().optional(),
});

/** One provider file (`providers.json`); unknown keys are allowed, as the registry adds some. */
export const oembedProvidersFileSchema = z.array(
  z.object({
    provider_name: z.string(),
    provider_url: z.string(),
    endpoints: z.array(endpointSchema),
  }),
);

/** A provider file that cannot be used; the message names the file and the entry. */
export class OEmbedProviderError extends Error {
  override name = "OEmbedProviderError";
}

/** One JSON endpoint and the URL patterns it answers for. */
export interface OEmbedEndpoint {
  providerName: string;
  /** The endpoint URL, `{format}` already replaced by `json`. */
  url: string;
  patterns: RegExp[];
}

/**
 * The endpoints of one parsed provider file. `source` names the file in
 * errors. Throws `OEmbedProviderError` for a malformed file, a non-http(s)
 * endpoint or a scheme that is not an http(s) URL glob.
 */
export function parseOEmbedProviders(contents: unknown, source: string): OEmbedEndpoint[] {
  const parsed = oembedProvidersFileSchema.safeParse(contents);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const path = issue.path.map((part) =>
      typeof part === "number" ? `[${part}]` : `.${String(part)}`,
    );
    throw new OEmbedProviderError(`${source}: ${path.join("") || "(top)"}: ${issue.message}`);
  }
  const endpoints: OEmbedEndpoint[] = [];
  for (const [p, provider] of parsed.data.entries()) {
    for (const [e, endpoint] of provider.endpoints.entries()) {
      const where = `${source}: [${p}].endpoints[${e}]`;
      const url = endpoint.url.replaceAll("{format}", "json");
      if (absoluteHttpUrl(url) === undefined) {
        throw new OEmbedProviderError(`${where}.url: must be an http(s) URL: ${endpoint.url}`);
      }
      const json = endpoint.formats === undefined || endpoint.formats.includes("json");
      if (!json || url.endsWith(".xml") || !endpoint.schemes?.length) continue;
      const patterns = endpoint.schemes.map((scheme, s) => {
        const pattern = schemeToPattern(scheme);
        if (pattern === undefined) {
          throw new OEmbedProviderError(
            `${where}.schemes[${s}]: must be an http(s) URL pattern: ${scheme}`,
          );
        }
        return pattern;
      });
      endpoints.push({ providerName: provider.provider_name, url, patterns });
    }
  }
  return endpoints;
}

/**
 * The regular expression of one oEmbed URL scheme, or undefined when the
 * scheme is not `http://` or `https://` followed by a host.
 */
export function schemeToPattern(scheme: string): RegExp | undefined {
  const match = /^(https?):\/\/([^/?#]+)(.*)$/is.exec(scheme);
  if (match === null) return undefined;
  const [, schemeName, host, rest] = match;
  const protocol = schemeName!.toLowerCase();
  const hostPattern = escapeRegExp(host!.toLowerCase()).replaceAll("\\*", "[a-zA-Z0-9_-]+");
  const restPattern = escapeRegExp(rest!).replaceAll("\\*", ".+");
  return new RegExp(`^${protocol}://${hostPattern}${restPattern}$`);
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/-]/g, "\\$&");
}

/** The providers in force: the bundled ones (unless disabled) and those of additional files. */
export class OEmbedProviders {
  constructor(private readonly endpoints: readonly OEmbedEndpoint[]) {}

  /**
   * Builds the provider list. `additional` holds parsed provider files
   * (the config's `oembed.additional_providers`, read by the caller) with a
   * name for errors; throws `OEmbedProviderError` for the first bad one.
   */
  static create(options: {
    disableDefaultProviders?: boolean;
    additional?: readonly { source: string; contents: unknown }[];
  }): OEmbedProviders {
    const endpoints = options.disableDefaultProviders
      ? []
      : parseOEmbedProviders(DEFAULT_OEMBED_PROVIDERS, "bundled providers");
    for (const file of options.additional ?? []) {
      endpoints.push(...parseOEmbedProviders(file.contents, file.source));
    }
    return new OEmbedProviders(endpoints);
  }

  /**
   * The oEmbed request URL for `pageUrl` when a provider's scheme matches
   * it (the first provider wins), else undefined. The page URL is matched
   * in its normalised form (lower-case scheme and host).
   */
  requestUrlFor(pageUrl: string): string | undefined {
    const normalised = absoluteHttpUrl(pageUrl);
    if (normalised === undefined) return undefined;
    for (const endpoint of this.endpoints) {
      if (endpoint.patterns.some((pattern) => pattern.test(normalised))) {
        return oembedRequestUrl(endpoint.url, normalised);
      }
    }
    return undefined;
  }
}

/** `endpoint` with the `url` and `format=json` query parameters set. */
export function oembedRequestUrl(endpoint: string, pageUrl: string): string {
  const url = new URL(endpoint);
  url.searchParams.set("url", pageUrl);
  url.searchParams.set("format", "json");
  return url.href;
}

/** Largest oEmbed response parsed; bigger ones give no preview. */
export const MAX_OEMBED_RESPONSE_BYTES = 256 * 1024;
/** oEmbed responses are flat objects; anything nested deeper is refused. */
const MAX_OEMBED_JSON_DEPTH = 8;

/** What an oEmbed response gives a preview. */
export interface OEmbedPreview {
  /** OpenGraph keys, capped; `{}` when the response is unusable. */
  og: OpenGraph;
  /** `author_name`: the title when nothing else gives one (Synapse). */
  authorName?: string;
  /** `cache_age` in milliseconds: how long the preview may be cached. */
  cacheAgeMs?: number;
}

/**
 * Parses an oEmbed response body (UTF-8 JSON, as the oEmbed spec requires)
 * for the page at `pageUrl`. Anything malformed gives `{ og: {} }`.
 */
export function parseOEmbedResponse(body: Uint8Array, pageUrl: string): OEmbedPreview {
  if (body.length > MAX_OEMBED_RESPONSE_BYTES) return { og: {} };
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(body));
  } catch {
    return { og: {} };
  }
  return oembedToOpenGraph(value, pageUrl);
}

/** Converts a parsed oEmbed response to OpenGraph keys, checking every field. */
export function oembedToOpenGraph(value: unknown, pageUrl: string): OEmbedPreview {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return { og: {} };
  if (exceedsJsonDepth(value, MAX_OEMBED_JSON_DEPTH)) return { og: {} };
  const field = (name: string): unknown =>
    Object.hasOwn(value, name) ? (value as Record<string, unknown>)[name] : undefined;

  // `version` is required but often missing, or a number: be lenient (Synapse).
  const version = field("version");
  if (version !== undefined && version !== "1.0" && version !== 1) return { og: {} };

  const og: Record<string, string | number> = { "og:url": pageUrl };
  const title = text(field("title"));
  // A common WordPress plug-in escapes entities in the title (Synapse #14781).
  if (title !== undefined) og["og:title"] = decodeHTML(title);
  const siteName = text(field("provider_name"));
  if (siteName !== undefined) og["og:site_name"] = siteName;
  const thumbnail = imageUrl(field("thumbnail_url"));
  if (thumbnail !== undefined) og["og:image"] = thumbnail;

  switch (field("type")) {
    case "photo": {
      const photo = imageUrl(field("url"));
      if (photo !== undefined) og["og:image"] = photo;
      break;
    }
    case "video": {
      og["og:type"] = "video.other";
      addHtmlFragment(og, field("html"));
      for (const size of ["width", "height"] as const) {
        const dimension = field(size);
        if (Number.isSafeInteger(dimension) && (dimension as number) > 0) {
          og[`og:video:${size}`] = dimension as number;
        }
      }
      break;
    }
    case "rich":
      addHtmlFragment(og, field("html"));
      break;
    case "link":
      og["og:type"] = "website";
      break;
    default:
      break; // unknown type: the common fields only
  }

  const preview: OEmbedPreview = { og: capOpenGraph(og) };
  const authorName = text(field("author_name"));
  if (authorName !== undefined) preview.authorName = authorName;
  const cacheAgeMs = cacheAge(field("cache_age"));
  if (cacheAgeMs !== undefined) preview.cacheAgeMs = cacheAgeMs;
  return preview;
}

/** The first image, video and the text of a `rich`/`video` response's `html`. */
function addHtmlFragment(og: Record<string, string | number>, html: unknown): void {
  if (typeof html !== "string" || html === "") return;
  const fragment = summarizeHtmlFragment(html);
  const image = fragment.image === undefined ? undefined : attributeImageSource(fragment.image);
  if (og["og:image"] === undefined && image !== undefined) og["og:image"] = image;
  const video = fragment.video === undefined ? undefined : absoluteHttpUrl(fragment.video);
  if (video !== undefined) og["og:video"] = video;
  if (fragment.description !== undefined) og["og:description"] = fragment.description;
}

/** A non-blank string, trimmed; undefined for anything else. */
function text(value: unknown): string | undefined {
  if (typeof value !== "string") return undefined;
  const trimmed = value.trim();
  return trimmed === "" ? undefined : trimmed;
}

/** An absolute http(s) URL or a `data:` URL (an image's source); undefined for anything else. */
function imageUrl(value: unknown): string | undefined {
  return typeof value === "string" ? previewImageSource(value) : undefined;
}

/**
 * `cache_age` (seconds, a number or a string of digits) in milliseconds;
 * undefined when missing, negative, fractional as a string, or absurd
 * (Synapse reads it with Python's `int()`; callers cap it at one day).
 */
function cacheAge(value: unknown): number | undefined {
  let seconds: number;
  if (typeof value === "number") seconds = Math.trunc(value);
  else if (typeof value === "string" && /^\s*\+?\d{1,15}\s*$/.test(value)) seconds = Number(value);
  else return undefined;
  if (!Number.isSafeInteger(seconds * 1000) || seconds < 0) return undefined;
  return seconds * 1000;
}
