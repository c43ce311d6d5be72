/**
 * A bounded HTML event scanner on htmlparser2's tokenizer.
 *
 * Design note. htmlparser2's `Parser` keeps its open-element stack with
 * `Array.unshift` and looks close tags up with `indexOf`, so 100,000 nested
 * `<div>`s cost quadratic time (about 7 s measured on Node 20): the deep-HTML
 * denial of service of CVE-2022-31052 in another form. So mxcd drives the
 * linear `Tokenizer` itself and keeps its own element stack, capped at
 * `MAX_OPEN_ELEMENTS`: an element opened on a full stack is only counted
 * (`overflow`), and a close tag while anything is counted closes one of those.
 * Every event therefore costs O(cap) at most, and memory is the input plus
 * a fixed amount: no tree is built. Attribute values are capped while they
 * are read (no giant substring is ever made), and so are the number and the
 * name length of attributes per tag.
 *
 * The sink sees balanced `openTag`/`closeTag` pairs for every element that
 * was pushed (void elements close at once; closing an outer element closes
 * the ones left open inside it; `<p>`, `<li>`, `<td>` and the like close an
 * unclosed one of their kind; the end of input closes the rest), and
 * `openTag` with `pushed: false` for one counted on a full stack. A raw-text
 * element (`<title>`, `<script>`…) on a full stack is still reported as a
 * pair, since the tokenizer guarantees its end tag comes next.
 */
import { Tokenizer, type TokenizerCallbacks } from "htmlparser2";
import { CLOSES_OPEN, HEAD_CONTENT, RAW_TEXT, VOID_ELEMENTS } from "./html-elements.js";

/** Most elements kept open at once; deeper ones are counted, not tracked. */
export const MAX_OPEN_ELEMENTS = 256;
/** Characters of an attribute value kept; the rest is dropped while reading. */
export const MAX_ATTRIBUTE_VALUE_CHARS = 8192;
/** Attributes kept per tag (the first ones win, as in browsers). */
export const MAX_ATTRIBUTES_PER_TAG = 64;
/** Longer attribute names are ignored. */
const MAX_ATTRIBUTE_NAME_CHARS = 64;

/** What a consumer of the scanner receives. */
export interface HtmlSink {
  /** `attributes` are lower-cased names to values; `pushed` is false on a full stack. */
  openTag(name: string, attributes: ReadonlyMap<string, string>, pushed: boolean): void;
  closeTag(name: string): void;
  /**
   * Text with entities decoded, in pieces; a piece never spans a tag. `deep`
   * is true inside elements that were opened on a full stack.
   */
  text(data: string, deep: boolean): void;
}

/** Counters for tests and metrics: what the scanner looked at. */
export interface ScanStats {
  /** Characters of input handed to the tokenizer. */
  chars: number;
  /** Start tags seen (pushed or not). */
  tags: number;
  /** Deepest stack reached (never above `MAX_OPEN_ELEMENTS`). */
  maxDepth: number;
  /** Start tags that found the stack full. */
  overflowed: number;
}

/**
 * Scans `html` and reports its tags and text to `sink`; never throws on bad
 * markup. Time is linear in the input (each event costs at most
 * `MAX_OPEN_ELEMENTS` steps); returns what was scanned.
 */
export function scanHtml(html: string, sink: HtmlSink): ScanStats {
  const scanner = new BoundedScanner(html, sink);
  const tokenizer = new Tokenizer({ decodeEntities: true }, scanner);
  tokenizer.write(html);
  tokenizer.end();
  return scanner.stats;
}

class BoundedScanner implements TokenizerCallbacks {
  readonly stats: ScanStats = { chars: 0, tags: 0, maxDepth: 0, overflowed: 0 };
  private readonly stack: string[] = [];
  /** Elements opened while the stack was full and not closed yet. */
  private overflow = 0;
  /** A raw-text element opened on a full stack: only its own end tag can come next. */
  private rawTextOnFullStack: string | undefined;
  private tagName = "";
  private attributes = new Map<string, string>();
  private attributeName = "";
  private attributeValue = "";

  constructor(
    private readonly html: string,
    private readonly sink: HtmlSink,
  ) {
    this.stats.chars = html.length;
  }

  onopentagname(start: number, end: number): void {
    this.tagName = this.html.slice(start, end).toLowerCase();
    this.attributes = new Map();
  }

  onattribname(start: number, end: number): void {
    const length = end - start;
    this.attributeName =
      length > MAX_ATTRIBUTE_NAME_CHARS ? "" : this.html.slice(start, end).toLowerCase();
    this.attributeValue = "";
  }

  onattribdata(start: number, end: number): void {
    const room = MAX_ATTRIBUTE_VALUE_CHARS - this.attributeValue.length;
    if (room > 0) this.attributeValue += this.html.slice(start, Math.min(end, start + room));
  }

  onattribentity(codepoint: number): void {
    if (this.attributeValue.length < MAX_ATTRIBUTE_VALUE_CHARS) {
      this.attributeValue += String.fromCodePoint(codepoint);
    }
  }

  onattribend(): void {
    const name = this.attributeName;
    if (
      name !== "" &&
      this.attributes.size < MAX_ATTRIBUTES_PER_TAG &&
      !this.attributes.has(name)
    ) {
      this.attributes.set(name, this.attributeValue);
    }
    this.attributeValue = "";
  }

  onopentagend(): void {
    this.openElement();
  }

  onselfclosingtag(): void {
    // HTML ignores the slash of `<div/>`; void elements close anyway.
    this.openElement();
  }

  onclosetag(start: number, end: number): void {
    const name = this.html.slice(start, end).toLowerCase();
    if (VOID_ELEMENTS.has(name)) return;
    if (this.rawTextOnFullStack !== undefined) {
      this.rawTextOnFullStack = undefined;
      this.sink.closeTag(name);
      return;
    }
    if (this.overflow > 0) {
      // Deep inside counted elements: the close belongs to one of them.
      this.overflow -= 1;
      return;
    }
    const at = this.stack.lastIndexOf(name);
    if (at !== -1) this.popTo(at);
  }

  ontext(start: number, end: number): void {
    this.emitText(this.html.slice(start, end));
  }

  ontextentity(codepoint: number): void {
    this.emitText(String.fromCodePoint(codepoint));
  }

  oncdata(): void {}
  oncomment(): void {}
  ondeclaration(): void {}
  onprocessinginstruction(): void {}

  onend(): void {
    if (this.rawTextOnFullStack !== undefined) this.sink.closeTag(this.rawTextOnFullStack);
    this.rawTextOnFullStack = undefined;
    this.popTo(0);
  }

  private openElement(): void {
    const name = this.tagName;
    this.tagName = "";
    if (name === "") return;
    this.stats.tags += 1;
    if (name === "body" || !HEAD_CONTENT.has(name)) this.closeOpenHead();
    this.closeImplied(name);
    if (VOID_ELEMENTS.has(name)) {
      this.sink.openTag(name, this.attributes, true);
      this.sink.closeTag(name);
      return;
    }
    if (this.stack.length >= MAX_OPEN_ELEMENTS) {
      if (RAW_TEXT.has(name)) {
        // Its text and end tag follow at once: report it as a full element, untracked.
        this.rawTextOnFullStack = name;
        this.sink.openTag(name, this.attributes, true);
        return;
      }
      this.overflow += 1;
      this.stats.overflowed += 1;
      this.sink.openTag(name, this.attributes, false);
      return;
    }
    this.stack.push(name);
    if (this.stack.length > this.stats.maxDepth) this.stats.maxDepth = this.stack.length;
    this.sink.openTag(name, this.attributes, true);
  }

  private emitText(data: string): void {
    if (data === "") return;
    // Non-blank text cannot live in <head>: the head ends before it (HTML spec).
    if (this.stack.at(-1) === "head" && data.trim() !== "") this.closeOpenHead();
    this.sink.text(data, this.overflow > 0 && this.rawTextOnFullStack === undefined);
  }

  /** Closes the unclosed elements on top of the stack that a `name` start tag ends. */
  private closeImplied(name: string): void {
    const closed = CLOSES_OPEN.get(name);
    if (closed === undefined || this.overflow > 0) return;
    while (this.stack.length > 0 && closed.has(this.stack.at(-1)!)) {
      this.sink.closeTag(this.stack.pop()!);
    }
  }

  /** An unclosed `<head>` ends where body content starts. */
  private closeOpenHead(): void {
    if (this.overflow > 0) return;
    const at = this.stack.lastIndexOf("head");
    if (at !== -1) this.popTo(at);
  }

  /** Closes every element from the top of the stack down to index `at`. */
  private popTo(at: number): void {
    while (this.stack.length > at) {
      this.sink.closeTag(this.stack.pop()!);
    }
  }
}
