/**
 * The few facts about HTML elements the bounded scanner needs to follow a
 * page's structure without building a tree (from the HTML spec's parsing
 * rules, simplified: no tree is built, so only what keeps the open-element
 * stack short and the head/body split right is modelled).
 */

/** Elements that have no content and no end tag. */
export const VOID_ELEMENTS = new Set([
  "area",
  "base",
  "br",
  "col",
  "embed",
  "hr",
  "img",
  "input",
  "keygen",
  "link",
  "meta",
  "param",
  "source",
  "track",
  "wbr",
]);

/** Elements that may stay inside an unclosed `<head>`; anything else closes it (HTML spec). */
export const HEAD_CONTENT = new Set([
  "base",
  "link",
  "meta",
  "noscript",
  "script",
  "style",
  "template",
  "title",
]);

/**
 * Start tags that end an open element left unclosed on top of the stack
 * (a subset of the HTML spec's implied end tags: `<p>a<p>b`, `<li>a<li>b`),
 * so pages that omit these end tags do not pile up open elements.
 */
export const CLOSES_OPEN: ReadonlyMap<string, ReadonlySet<string>> = (() => {
  const block = [
    "address",
    "article",
    "aside",
    "blockquote",
    "details",
    "div",
    "dl",
    "fieldset",
    "figure",
    "footer",
    "form",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "header",
    "hr",
    "main",
    "nav",
    "ol",
    "p",
    "pre",
    "section",
    "table",
    "ul",
  ];
  const rules = new Map<string, Set<string>>(block.map((name) => [name, new Set(["p"])]));
  const add = (opening: string[], closed: string[]) => {
    for (const name of opening) {
      const set = rules.get(name) ?? new Set<string>();
      for (const c of closed) set.add(c);
      rules.set(name, set);
    }
  };
  add(["li"], ["li", "p"]);
  add(["dt", "dd"], ["dt", "dd", "p"]);
  add(["option"], ["option"]);
  add(["tr"], ["tr", "td", "th"]);
  add(["td", "th"], ["td", "th"]);
  return rules;
})();

/**
 * Elements whose content the tokenizer reads as text up to their own end
 * tag, so their end is certain even when the stack is full.
 */
export const RAW_TEXT = new Set([
  "iframe",
  "noembed",
  "noframes",
  "script",
  "style",
  "textarea",
  "title",
  "xmp",
]);
