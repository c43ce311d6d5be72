/**
 * Turns paragraphs of page text into a short description, the way Synapse's
 * `summarize_paragraphs` does (media-gaps.md §1.4): whole paragraphs are
 * taken until the text reaches `MIN_SUMMARY_CHARS`, paragraphs are joined by
 * a blank line, and text longer than `MAX_SUMMARY_CHARS` is cut at a word
 * boundary (a single huge word is cut hard) and ends with `…`.
 *
 * `ParagraphCollector` takes the paragraphs as a stream and keeps a bounded
 * amount of text: once the minimum is reached it takes no more, and each
 * paragraph is kept to `MAX_SUMMARY_CHARS + 1` characters, which cannot
 * change the result (anything past that is cut anyway). Callers hand it
 * bounded paragraphs (the HTML scanner caps what it collects).
 */

/** Paragraphs are taken until the description is at least this long. */
export const MIN_SUMMARY_CHARS = 200;
/** Longer descriptions are cut to under this many characters, plus `…`. */
export const MAX_SUMMARY_CHARS = 500;

const PARAGRAPH_CAP = MAX_SUMMARY_CHARS + 1;

/** Collects paragraphs for `summary()`; bounded whatever is offered. */
export class ParagraphCollector {
  private description = "";

  /** True once enough text is held; later paragraphs are ignored. */
  get full(): boolean {
    return this.description.length >= MIN_SUMMARY_CHARS;
  }

  /** Offers one paragraph; white space runs become one space, blank paragraphs are skipped. */
  add(paragraph: string): void {
    if (this.full) return;
    const text = collapseWhiteSpace(paragraph).slice(0, PARAGRAPH_CAP);
    if (text === "") return;
    this.description += `${text}\n\n`;
  }

  /** The description, or undefined when no text was offered. */
  summary(): string | undefined {
    return summarize(this.description);
  }
}

/** Summarises one text (an existing description), as the collector would. */
export function summarizeText(text: string): string | undefined {
  const collector = new ParagraphCollector();
  collector.add(text);
  return collector.summary();
}

/** White space runs (Unicode white space included) to one space, trimmed. */
export function collapseWhiteSpace(text: string): string {
  return text.replace(/\s+/g, " ").trim();
}

function summarize(joined: string): string | undefined {
  const description = joined.trim();
  if (description.length <= MAX_SUMMARY_CHARS) return description === "" ? undefined : description;
  let cut = "";
  for (const match of description.matchAll(/\s*\S+/g)) {
    const word = match[0];
    if (cut.length + word.length < MAX_SUMMARY_CHARS) {
      cut += word;
      continue;
    }
    // The next word would pass the maximum; a short summary still takes it (cut below).
    if (cut.length < MIN_SUMMARY_CHARS) cut += word;
    break;
  }
  return `${cut.slice(0, MAX_SUMMARY_CHARS).trim()}…`;
}
