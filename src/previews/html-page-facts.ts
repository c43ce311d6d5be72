/**
 * What an HTML page offers a preview, gathered in one pass of the bounded
 * scanner (`html-scanner.ts`): the rules of Synapse's `preview_html.py` for
 * which tags count, and which text makes a description (media-gaps.md §1.4).
 * `html-opengraph.ts` turns these facts into OpenGraph keys.
 */
import type { HtmlSink } from "./html-scanner.js";
import { collapseWhiteSpace, ParagraphCollector } from "./text-summary.js";

/** More distinct keys than this under one prefix and the prefix is ignored (Synapse). */
export const MAX_TAGS_PER_PREFIX = 50;

/** The OpenGraph prefixes read as they are. */
export const PREFIXES = ["og", "article", "profile"] as const;
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
export const HEADINGS = ["h1", "h2", "h3"] as const;
/** Characters kept of a title, heading or paragraph being read. */
const CAPTURE_CAP = 2048;

/** Meta tags of one prefix; more than `MAX_TAGS_PER_PREFIX` keys poison it. */
export class PrefixTags {
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

/**
 * Collects what a preview needs while the scanner walks the page: meta tags
 * by prefix, title and headings, images, the oEmbed link, and the text
 * paragraphs for a description. Fields are filled in as the page is read.
 */
export class PageFacts implements HtmlSink {
  /** Meta tags by prefix (`og`, `article`, `profile`, `twitter` mapped to `og:`). */
  readonly prefixes = new Map<string, PrefixTags>(
    [...PREFIXES, "twitter"].map((prefix) => [prefix, new PrefixTags()]),
  );
  metaDescription: string | undefined;
  itempropImage: string | undefined;
  title: string | undefined;
  readonly headings = new Map<string, string>();
  largestImage: { src: string; area: number } | undefined;
  firstImage: string | undefined;
  firstVideo: string | undefined;
  firstEmbed: string | undefined;
  favicon: string | undefined;
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
