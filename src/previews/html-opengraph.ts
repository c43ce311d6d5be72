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
 *   kept only when it is http(s).
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
import { decodeHtml } from "./html-charset.js";
import { type HtmlSink, type ScanStats, scanHtml } from "./html-scanner.js";
import { absoluteHttpUrl, capOpenGraph, type OpenGraph } from "./open-graph.js";
import { collapseWhiteSpace, ParagraphCollector, summarizeText } from "./text-summary.js";

/** Default bytes of a page that are parsed; the rest is never read. */
export const DEFAULT_MAX_HTML_BYTES = 1024 * 1024;
/** More distinct keys than this under one prefix and the prefix is ignored (Synapse). */
export const MAX_TAGS_PER_PREFIX = 50;

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
  const sink = new OpenGraphSink();
  const stats = scanHtml(text, sink);
  const result: HtmlPreview = {
    og: sink.openGraph(options.pageUrl),
    encoding,
    stats: { ...stats, bytes: prefix.length },
  };
  const oembedUrl = sink.oembedHref && absoluteHttpUrl(sink.oembedHref, options.pageUrl);
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
  const sink = new OpenGraphSink();
  scanHtml(html, sink);
  const summary: HtmlFragmentSummary = {};
  if (sink.firstImage !== undefined) summary.image = sink.firstImage;
  const video = sink.firstVideo ?? sink.firstEmbed;
  if (video !== undefined) summary.video = video;
  const description = sink.bodyText();
  if (description !== undefined) summary.description = description;
  return summary;
}

const PREFIXES = ["og", "article", "profile"] as const;
const TWITTER_DROPPED = new Set(["twitter:card", "twitter:creator", "twitter:site"]);

/** Elements whose text is not part of the description. */
const TEXT_IGNORED = new Set([
  "head",
  "header",
  "nav",
  "aside",
  "footer",
  "script",
  "noscript",
  "style",
  "svg",
  "iframe",
  "video",
  "canvas",
  "img",
  "picture",
  "title",
  "template",
]);
/** ARIA roles of elements that are not meant to be read as text (Synapse). */
const ROLES_IGNORED = new Set(["directory", "menu", "menubar", "toolbar"]);
/** Inline elements: their text continues the paragraph around them. */
const INLINE = new Set([
  "a",
  "abbr",
  "b",
  "bdi",
  "bdo",
  "cite",
  "code",
  "data",
  "dfn",
  "em",
  "font",
  "i",
  "kbd",
  "label",
  "mark",
  "q",
  "s",
  "samp",
  "small",
  "span",
  "strong",
  "sub",
  "sup",
  "time",
  "u",
  "var",
]);
const HEADINGS = ["h1", "h2", "h3"] as const;
/** Characters kept of a title, heading or paragraph being read. */
const CAPTURE_CAP = 2048;

/** Meta tags of one prefix; more than `MAX_TAGS_PER_PREFIX` keys poison it. */
class PrefixTags {
  readonly tags = new Map<string, string>();
  poisoned = false;

  add(key: string, value: string): void {
    if (this.poisoned || this.tags.has(key)) return;
    if (this.tags.size >= MAX_TAGS_PER_PREFIX) {
      this.poisoned = true;
      return;
    }
    this.tags.set(key, value);
  }

  entries(): Iterable<[string, string]> {
    return this.poisoned ? [] : this.tags;
  }
}

/** Collects what a preview needs while the scanner walks the page. */
class OpenGraphSink implements HtmlSink {
  private readonly prefixes = new Map<string, PrefixTags>(
    [...PREFIXES, "twitter"].map((prefix) => [prefix, new PrefixTags()]),
  );
  private metaDescription: string | undefined;
  private itempropImage: string | undefined;
  private title: string | undefined;
  private readonly headings = new Map<string, string>();
  private largestImage: { src: string; area: number } | undefined;
  firstImage: string | undefined;
  firstVideo: string | undefined;
  firstEmbed: string | undefined;
  private favicon: string | undefined;
  private oembedAlternate: string | undefined;
  private oembedAlternative: string | undefined;

  /** Depth of pushed elements; `ignoreFrom` > 0 is the depth of the outermost ignored one. */
  private depth = 0;
  private ignoreFrom = 0;
  /** The title or heading being read, and the depth its element opened at. */
  private capture: { name: string; depth: number; text: string } | undefined;
  private paragraph = "";
  private readonly collector = new ParagraphCollector();

  get oembedHref(): string | undefined {
    return this.oembedAlternate ?? this.oembedAlternative;
  }

  openTag(name: string, attributes: ReadonlyMap<string, string>, pushed: boolean): void {
    if (!INLINE.has(name)) this.endParagraph();
    this.noteElement(name, attributes);
    if (!pushed) return;
    this.depth += 1;
    if (this.ignoreFrom === 0) {
      const role = attributes.get("role")?.trim().toLowerCase();
      if (TEXT_IGNORED.has(name) || (role !== undefined && ROLES_IGNORED.has(role))) {
        this.ignoreFrom = this.depth;
      }
    }
    if (this.capture === undefined && this.wantsCapture(name)) {
      this.capture = { name, depth: this.depth, text: "" };
    }
  }

  closeTag(name: string): void {
    if (!INLINE.has(name)) this.endParagraph();
    if (this.capture !== undefined && this.capture.depth === this.depth) this.endCapture();
    if (this.ignoreFrom === this.depth) this.ignoreFrom = 0;
    this.depth -= 1;
  }

  text(data: string, deep: boolean): void {
    if (deep) return;
    if (this.capture !== undefined) this.capture.text = appendCapped(this.capture.text, data);
    if (this.ignoreFrom === 0 && !this.collector.full) {
      this.paragraph = appendCapped(this.paragraph, data);
    }
  }

  /** The summarised page text, or undefined. */
  bodyText(): string | undefined {
    this.endParagraph();
    return this.collector.summary();
  }

  /** The OpenGraph keys of the page, with the fallbacks applied. */
  openGraph(pageUrl: string): OpenGraph {
    const og: Record<string, string> = {};
    for (const prefix of PREFIXES) {
      for (const [key, value] of this.prefixes.get(prefix)!.entries()) og[key] ??= value;
    }
    for (const [key, value] of this.prefixes.get("twitter")!.entries()) og[key] ??= value;

    const title = og["og:title"] ?? this.fallbackTitle();
    if (title !== undefined) og["og:title"] = title;

    const image = og["og:image"] ?? this.fallbackImage();
    delete og["og:image"];
    const imageUrl = image === undefined ? undefined : absoluteHttpUrl(image, pageUrl);
    if (imageUrl !== undefined) og["og:image"] = imageUrl;

    const found = og["og:description"] ?? this.metaDescription;
    const description = found === undefined ? this.bodyText() : summarizeText(found);
    if (description === undefined) delete og["og:description"];
    else og["og:description"] = description;
    return capOpenGraph(og);
  }

  private fallbackTitle(): string | undefined {
    for (const source of [this.title, ...HEADINGS.map((h) => this.headings.get(h))]) {
      if (source !== undefined && source !== "") return source;
    }
    return undefined;
  }

  private fallbackImage(): string | undefined {
    return this.itempropImage ?? this.largestImage?.src ?? this.firstImage ?? this.favicon;
  }

  private wantsCapture(name: string): boolean {
    if (name === "title") return this.title === undefined;
    return (HEADINGS as readonly string[]).includes(name) && !this.headings.has(name);
  }

  private endCapture(): void {
    const { name, text } = this.capture!;
    this.capture = undefined;
    const value = collapseWhiteSpace(text);
    if (value === "") return; // an empty <title> or heading: the next one may do
    if (name === "title") this.title = value;
    else this.headings.set(name, value);
  }

  private endParagraph(): void {
    if (this.paragraph !== "") this.collector.add(this.paragraph);
    this.paragraph = "";
  }

  /** Looks at the tags a preview reads, wherever they are in the page. */
  private noteElement(name: string, attributes: ReadonlyMap<string, string>): void {
    if (name === "meta") this.noteMeta(attributes);
    else if (name === "link") this.noteLink(attributes);
    else if (name === "img") this.noteImage(attributes);
    else if (name === "video") this.firstVideo ??= nonBlank(attributes.get("src"));
    else if (name === "embed") this.firstEmbed ??= nonBlank(attributes.get("src"));
  }

  private noteMeta(attributes: ReadonlyMap<string, string>): void {
    const content = nonBlank(attributes.get("content"));
    if (content === undefined) return;
    const keys = [attributes.get("property"), attributes.get("name")];
    const key = keys.map((k) => k?.trim()).find((k) => k !== undefined && prefixOf(k) !== "");
    if (key !== undefined) {
      const prefix = prefixOf(key);
      if (prefix === "twitter") {
        if (!TWITTER_DROPPED.has(key)) this.prefixes.get(prefix)!.add(`og${key.slice(7)}`, content);
      } else {
        this.prefixes.get(prefix)!.add(key, content);
      }
    }
    if (/image/i.test(attributes.get("itemprop") ?? "")) this.itempropImage ??= content;
    if (/description/i.test(attributes.get("name") ?? "")) this.metaDescription ??= content;
  }

  private noteLink(attributes: ReadonlyMap<string, string>): void {
    const href = nonBlank(attributes.get("href"));
    if (href === undefined) return;
    const rel = (attributes.get("rel") ?? "").toLowerCase().split(/\s+/);
    if (rel.includes("icon")) this.favicon ??= href;
    const type = attributes.get("type")?.trim().toLowerCase();
    if (type !== "application/json+oembed") return;
    if (rel.includes("alternate")) this.oembedAlternate ??= href;
    else if (rel.includes("alternative")) this.oembedAlternative ??= href;
  }

  private noteImage(attributes: ReadonlyMap<string, string>): void {
    const src = nonBlank(attributes.get("src"));
    if (src === undefined) return;
    this.firstImage ??= src;
    const width = dimension(attributes.get("width"));
    const height = dimension(attributes.get("height"));
    if (width > 10 && height > 10) {
      const area = width * height;
      if (this.largestImage === undefined || area > this.largestImage.area) {
        this.largestImage = { src, area };
      }
    }
  }
}

/** The known prefix of a meta key (`og`, `article`, `profile`, `twitter`), or "". */
function prefixOf(key: string): string {
  const colon = key.indexOf(":");
  if (colon <= 0) return "";
  const prefix = key.slice(0, colon);
  return prefix === "twitter" || (PREFIXES as readonly string[]).includes(prefix) ? prefix : "";
}

function nonBlank(value: string | undefined): string | undefined {
  return value === undefined || value.trim() === "" ? undefined : value;
}

/** A declared `width`/`height` as a number; 0 when absent or not a number (Synapse). */
function dimension(value: string | undefined): number {
  if (value === undefined) return 0;
  const number = Number(value.trim());
  return Number.isFinite(number) ? number : 0;
}

/** Appends `data` to `text`, keeping at most `CAPTURE_CAP` characters after collapsing runs. */
function appendCapped(text: string, data: string): string {
  if (text.length >= CAPTURE_CAP) return text;
  const piece = data.replace(/\s+/g, " ");
  const joined = text.endsWith(" ") && piece.startsWith(" ") ? text + piece.slice(1) : text + piece;
  return joined.length > CAPTURE_CAP ? joined.slice(0, CAPTURE_CAP) : joined;
}
