/**
 * HTML page → OpenGraph keys, following Synapse's `preview_html.py`
 * (media-gaps.md §1.4), on the bounded scanner of `html-scanner.ts`: one
 * linear pass over a bounded prefix of the page, no tree.
 *
 * - `og:*`, `article:*`, `profile:*` meta tags (`property`, or `name`);
 *   `twitter:*` (`name`, or `property`) mapped to `og:*` where no og tag
 *   gave the key, `twitter:card`/`creator`/`site` dropped (a handle, not a
 *   site name). More than 50 distinct keys of one prefix: that prefix is
 *   ignored. The first tag of a key wins (the OpenGraph rule; Synapse keeps
 *   the last).
 * - Title fallback: the first `<title>`, else the first `<h1>`, `<h2>`, `<h3>`.
 * - Image fallback: `<meta itemprop=…image…>`, else the largest `<img>` whose
 *   declared width and height are both over 10, else the first `<img>`,
 *   else `<link rel~=icon>`. `og:image` is resolved against the page URL and
 *   kept only when it is http(s) or a `data:` URL (stored like a fetched image).
 * - Description fallback: `<meta name=…description…>`, else the page's text
 *   outside head, header, nav, aside, footer, script, noscript, style, svg,
 *   iframe, video, canvas, img, picture (and title, template) and menus, in
 *   paragraphs (inline elements such as `<a>` or `<b>` do not split one),
 *   summarised. Every description, found or built, is summarised.
 * - oEmbed autodiscovery: `<link rel="alternate" type="application/json+oembed">`
 *   (Flickr's `rel="alternative"` too), resolved against the page URL.
 *
 * Keys with no value are left out (Synapse answers `"og:title": null`).
 */

import { isDataUrl } from "./data-url-image.js";
import { decodeHtml } from "./html-charset.js";
import { HEADINGS, PageFacts, PREFIXES } from "./html-page-facts.js";
import { MAX_ATTRIBUTE_VALUE_CHARS, type ScanStats, scanHtml } from "./html-scanner.js";
import { absoluteHttpUrl, capOpenGraph, type OpenGraph, previewImageSource } from "./open-graph.js";
import { summarizeText } from "./text-summary.js";

/** Default bytes of a page that are parsed; the rest is never read. */
export const DEFAULT_MAX_HTML_BYTES = 1024 * 1024;

/** What a page gives a preview. */
export interface HtmlPreview {
  /** OpenGraph keys, capped (`capOpenGraph`). */
  og: OpenGraph;
  /** An oEmbed URL found by autodiscovery (absolute, http(s)). */
  oembedUrl?: string;
  /** The encoding the page was decoded with (WHATWG name). */
  encoding: string;
  /** Bytes of the body that were decoded and parsed, and the scanner's counters. */
  stats: ScanStats & { bytes: number };
}

export interface HtmlPreviewOptions {
  /** The page's final URL (after redirects): relative URLs are resolved against it. */
  pageUrl: string;
  /** The response's `Content-Type`, for its charset. */
  contentType?: string;
  /** Bytes parsed at most (default `DEFAULT_MAX_HTML_BYTES`). */
  maxBytes?: number;
  /** The body is already a prefix cut short of the page (see `readBodyPrefix`). */
  truncated?: boolean;
}

/** Builds the preview of an HTML page from (a prefix of) its body. */
export function htmlToOpenGraph(body: Uint8Array, options: HtmlPreviewOptions): HtmlPreview {
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_HTML_BYTES;
  const prefix = body.length > maxBytes ? body.subarray(0, maxBytes) : body;
  const truncated = options.truncated === true || prefix.length < body.length;
  const { text, encoding } = decodeHtml(prefix, options.contentType, truncated);
  const facts = new PageFacts();
  const stats = scanHtml(text, facts);
  const result: HtmlPreview = {
    og: openGraphOf(facts, options.pageUrl),
    encoding,
    stats: { ...stats, bytes: prefix.length },
  };
  const oembedUrl = facts.oembedHref && absoluteHttpUrl(facts.oembedHref, options.pageUrl);
  if (oembedUrl) result.oembedUrl = oembedUrl;
  return result;
}

/** Text of an HTML fragment (oEmbed `html`): its first image, video and summarised text. */
export interface HtmlFragmentSummary {
  image?: string;
  video?: string;
  description?: string;
}

/** Reads an HTML fragment as Synapse's `calc_description_and_urls` does. */
export function summarizeHtmlFragment(html: string): HtmlFragmentSummary {
  const facts = new PageFacts();
  scanHtml(html, facts);
  const summary: HtmlFragmentSummary = {};
  if (facts.firstImage !== undefined) summary.image = facts.firstImage;
  const video = facts.firstVideo ?? facts.firstEmbed;
  if (video !== undefined) summary.video = video;
  const description = facts.bodyText();
  if (description !== undefined) summary.description = description;
  return summary;
}

/** The OpenGraph keys of a page, with the fallbacks applied. */
function openGraphOf(facts: PageFacts, pageUrl: string): OpenGraph {
  const og: Record<string, string> = {};
  for (const prefix of PREFIXES) {
    for (const [key, value] of facts.prefixes.get(prefix)!.entries()) og[key] ??= value;
  }
  for (const [key, value] of facts.prefixes.get("twitter")!.entries()) og[key] ??= value;

  const title = og["og:title"] ?? fallbackTitle(facts);
  if (title !== undefined) og["og:title"] = title;

  const image = og["og:image"] ?? fallbackImage(facts);
  delete og["og:image"];
  const imageUrl = image === undefined ? undefined : attributeImageSource(image, pageUrl);
  if (imageUrl !== undefined) og["og:image"] = imageUrl;

  const found = og["og:description"] ?? facts.metaDescription;
  const description = found === undefined ? facts.bodyText() : summarizeText(found);
  if (description === undefined) delete og["og:description"];
  else og["og:description"] = description;
  return capOpenGraph(og);
}

/**
 * An image source read from an HTML attribute (previewImageSource), except
 * a `data:` URL as long as the scanner's attribute cap: it may have been cut
 * there, and a cut image must not be stored.
 */
export function attributeImageSource(raw: string, base?: string): string | undefined {
  if (isDataUrl(raw) && raw.length >= MAX_ATTRIBUTE_VALUE_CHARS) return undefined;
  return previewImageSource(raw, base);
}

/** The first `<title>`, else the first `<h1>`, `<h2>`, `<h3>`. */
function fallbackTitle(facts: PageFacts): string | undefined {
  for (const source of [facts.title, ...HEADINGS.map((h) => facts.headings.get(h))]) {
    if (source !== undefined && source !== "") return source;
  }
  return undefined;
}

/** itemprop image, else the largest declared `<img>`, the first `<img>`, the favicon. */
function fallbackImage(facts: PageFacts): string | undefined {
  return facts.itempropImage ?? facts.largestImage?.src ?? facts.firstImage ?? facts.favicon;
}
