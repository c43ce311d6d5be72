import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { htmlToOpenGraph } from "../../src/previews/html-opengraph.js";
import { MAX_TAGS_PER_PREFIX } from "../../src/previews/html-page-facts.js";
import { MAX_ATTRIBUTE_VALUE_CHARS, MAX_OPEN_ELEMENTS } from "../../src/previews/html-scanner.js";
import { OG_VALUE_MAX_CHARS } from "../../src/previews/open-graph.js";
import { MAX_SUMMARY_CHARS } from "../../src/previews/text-summary.js";
import { REPO_URL } from "../support/repo-url.js";

const PAGE = "https://example.org/articles/one.html";
const fixture = (name: string) => readFileSync(new URL(`test/previews/fixtures/${name}`, REPO_URL));
const bytes = (html: string) => new TextEncoder().encode(html);
const preview = (html: string | Uint8Array, maxBytes?: number) =>
  htmlToOpenGraph(typeof html === "string" ? bytes(html) : html, {
    pageUrl: PAGE,
    ...(maxBytes === undefined ? {} : { maxBytes }),
  });

describe("HTML to OpenGraph: tags", () => {
  it("reads og:, article: and profile: tags; the first tag of a key wins; twitter: fills gaps only", () => {
    const { og } = preview(fixture("opengraph.html"));
    assert.deepEqual(og, {
      "og:title": "An OpenGraph title",
      "og:description": "An OpenGraph description.",
      "og:image": "https://cdn.example.org/card.png",
      "og:site_name": "Example",
      "og:type": "article",
      "article:author": "Ann Author",
      "profile:username": "ann",
      "og:image:alt": "Alt text from Twitter",
    });
  });

  it("maps a Twitter-only page to og: keys, dropping card, creator and site", () => {
    const { og } = preview(fixture("twitter-only.html"));
    assert.deepEqual(og, {
      "og:title": "Twitter title",
      "og:description": "Twitter description",
      "og:image": "https://example.org/images/twitter.jpg",
    });
  });

  it("accepts og: keys in name= and twitter: keys in property=, skips blank content", () => {
    const { og } = preview(
      `<meta name="og:title" content="From name"><meta property="twitter:description" content="From property">` +
        `<meta property="og:image" content="   ">`,
    );
    assert.equal(og["og:title"], "From name");
    assert.equal(og["og:description"], "From property");
    assert.equal(og["og:image"], undefined);
  });

  it(`ignores a prefix with more than ${MAX_TAGS_PER_PREFIX} distinct keys, and only that prefix`, () => {
    const many = (count: number) =>
      Array.from({ length: count }, (_, i) => `<meta property="og:k${i}" content="v${i}">`).join(
        "",
      );
    const article = `<meta property="article:section" content="News">`;
    const atLimit = preview(many(MAX_TAGS_PER_PREFIX) + article).og;
    assert.equal(atLimit["og:k0"], "v0");
    assert.equal(atLimit[`og:k${MAX_TAGS_PER_PREFIX - 1}`], `v${MAX_TAGS_PER_PREFIX - 1}`);
    const over = preview(many(MAX_TAGS_PER_PREFIX + 1) + article).og;
    assert.equal(over["og:k0"], undefined);
    assert.equal(over["article:section"], "News");
  });
});

describe("HTML to OpenGraph: fallbacks", () => {
  it("falls back to a heading, the largest declared <img>, and the page text outside chrome", () => {
    const { og } = preview(fixture("no-tags.html"));
    assert.deepEqual(og, {
      "og:title": "Site header, not a paragraph",
      "og:image": "https://example.org/big.png",
      "og:description":
        "A second-level heading\n\nThe first paragraph has bold and linked words in it.\n\nThe second paragraph.",
    });
  });

  it("Synapse's anchor: <title>Foo</title> and body text", () => {
    const { og } = preview("<html><head><title>Foo</title></head><body>Some text.</body></html>");
    assert.deepEqual(og, { "og:title": "Foo", "og:description": "Some text." });
  });

  it("prefers <title> over headings, and skips an empty one", () => {
    assert.equal(preview("<h1>Heading</h1><title>Title</title>").og["og:title"], "Title");
    assert.equal(preview("<title> </title><h2>Two</h2><h1>One</h1>").og["og:title"], "One");
    assert.equal(preview("<h3>Three</h3><h2>Two</h2>").og["og:title"], "Two");
  });

  it("image order: itemprop, largest declared <img>, first <img>, favicon", () => {
    const favicon = `<link rel="icon" href="/fav.ico">`;
    const first = `<img src="/first.png"><img src="/tiny.png" width="10" height="500">`;
    const large = `<img src="/large.png" width="20" height="20">`;
    const itemprop = `<meta itemprop="image" content="/itemprop.png">`;
    const image = (html: string) => preview(html).og["og:image"];
    assert.equal(image(favicon), "https://example.org/fav.ico");
    assert.equal(image(favicon + first), "https://example.org/first.png");
    assert.equal(image(favicon + first + large), "https://example.org/large.png");
    assert.equal(image(favicon + first + large + itemprop), "https://example.org/itemprop.png");
  });

  it("meta description before page text; every description is summarised", () => {
    const long = "word ".repeat(400);
    const { og } = preview(`<meta name="Description" content="${long}"><p>Text</p>`);
    const description = og["og:description"] as string;
    assert.ok(description.endsWith("…"));
    assert.ok(description.length <= MAX_SUMMARY_CHARS + 1);
  });

  it("takes paragraphs until 200 characters, then cuts under 500 at a word boundary", () => {
    const paragraph = (n: number) => `<p>${`p${n} `.repeat(30)}</p>`;
    const { og } = preview(`<body>${[1, 2, 3, 4, 5, 6].map(paragraph).join("")}</body>`);
    const description = og["og:description"] as string;
    const paragraphs = description.replace(/…$/, "").split("\n\n");
    // Each paragraph is 30 × "pN " = 90 characters: three reach 200, the fourth is not taken.
    assert.equal(paragraphs.length, 3);
    assert.ok(!description.includes("p4"));
    assert.ok(!description.endsWith("…"));
  });

  it("leaves out keys it found nothing for (no null values)", () => {
    assert.deepEqual(preview("<html><head></head><body></body></html>").og, {});
  });
});

describe("HTML to OpenGraph: URLs", () => {
  it("resolves a relative og:image against the page URL", () => {
    const { og } = preview(`<meta property="og:image" content="../img/a b.png">`);
    assert.equal(og["og:image"], "https://example.org/img/a%20b.png");
  });

  it("keeps og:image only when it is http(s) or data: (stored like a fetched image)", () => {
    const data = "data:image/png;base64,AAAA";
    assert.equal(preview(`<meta property="og:image" content="${data}">`).og["og:image"], data);
    for (const image of ["javascript:alert(1)", "ftp://x/y.png"]) {
      assert.equal(
        preview(`<meta property="og:image" content="${image}">`).og["og:image"],
        undefined,
      );
    }
  });

  it("finds the oEmbed autodiscovery link (alternate before alternative)", () => {
    const alternative = `<link rel="alternative" type="application/json+oembed" href="/alt">`;
    const alternate = `<link rel="Alternate" type="application/json+oembed" href="/oembed?url=x">`;
    const xml = `<link rel="alternate" type="text/xml+oembed" href="/xml">`;
    assert.equal(preview(xml + alternative).oembedUrl, "https://example.org/alt");
    assert.equal(preview(alternative + alternate).oembedUrl, "https://example.org/oembed?url=x");
    assert.equal(preview(xml).oembedUrl, undefined);
    const data = `<link rel="alternate" type="application/json+oembed" href="data:application/json,{}">`;
    assert.equal(preview(data).oembedUrl, undefined);
  });
});

describe("HTML to OpenGraph: hostile pages", () => {
  it("100,000 nested <div>s keep at most the capped stack, and the page still parses (CVE-2022-31052)", () => {
    const depth = 100_000;
    const html =
      "<html><head><title>Deep</title></head><body>" +
      "<div>".repeat(depth) +
      "deep text" +
      "</div>".repeat(depth) +
      "<p>After the nest.</p><img src='/after.png'></body></html>";
    const result = preview(html, html.length);
    assert.equal(result.stats.maxDepth, MAX_OPEN_ELEMENTS);
    assert.ok(result.stats.overflowed >= depth - MAX_OPEN_ELEMENTS);
    assert.deepEqual(result.og, {
      "og:title": "Deep",
      "og:description": "After the nest.",
      "og:image": "https://example.org/after.png",
    });
  });

  it("close tags that match nothing on a deep stack cost no more than the cap", () => {
    const html = `${"<div>".repeat(50_000)}${"</span>".repeat(50_000)}<title>End</title>`;
    const result = preview(html, html.length);
    assert.equal(result.stats.maxDepth, MAX_OPEN_ELEMENTS);
    assert.equal(result.og["og:title"], "End");
  });

  it("parses only the byte prefix: a tag after the limit is never seen", () => {
    const limit = 64 * 1024;
    const filler = `<p>${"x".repeat(1000)}</p>`.repeat(200); // ~200 KB
    const html = `<title>Head</title>${filler}<meta property="og:image" content="/late.png">`;
    const body = bytes(html);
    assert.ok(body.length > 3 * limit);
    const result = preview(body, limit);
    assert.equal(result.stats.bytes, limit);
    assert.ok(result.stats.chars <= limit);
    assert.equal(result.og["og:title"], "Head");
    assert.equal(result.og["og:image"], undefined);
    // The same page with a limit that reaches the tag finds it.
    assert.equal(preview(body, body.length).og["og:image"], "https://example.org/late.png");
  });

  it("caps giant attribute values while reading them, and drops overlong values", () => {
    const giant = "A".repeat(5 * 1024 * 1024);
    const html =
      `<meta property="og:title" content="${giant}">` +
      `<meta property="og:description" content="${"word ".repeat(1024 * 1024)}">` +
      `<meta property="og:url" content="https://example.org/${"p".repeat(OG_VALUE_MAX_CHARS)}">` +
      `<img src="/ok.png" data-junk="${giant}">`;
    const { og } = preview(html, html.length);
    assert.equal(og["og:title"], undefined, "a value over the cap is dropped");
    assert.equal(og["og:url"], undefined);
    const description = og["og:description"] as string;
    assert.ok(description.length <= MAX_SUMMARY_CHARS + 1 && description.endsWith("…"));
    assert.equal(og["og:image"], "https://example.org/ok.png");
    assert.ok(MAX_ATTRIBUTE_VALUE_CHARS < giant.length);
  });

  it("drops overlong keys", () => {
    const key = `og:${"k".repeat(60)}`;
    assert.deepEqual(preview(`<meta property="${key}" content="v"><title>T</title>`).og, {
      "og:title": "T",
    });
  });

  it("an unclosed <head> ends where body content starts", () => {
    const { og } = preview("<html><head><title>T</title><meta charset=utf-8><p>Body text.");
    assert.equal(og["og:description"], "Body text.");
  });

  it("survives markup soup without throwing", () => {
    const soup =
      `<<<>>><a href="x"<img src=><meta property=og:title content=Soup><!--<title>no</title>-->` +
      `<script>"</script><p>after script</p>`;
    const { og } = preview(soup);
    assert.equal(og["og:title"], "Soup");
    // "<<<>>>" is text, as in a browser; the comment and the script are not.
    assert.equal(og["og:description"], "<<<>>>\n\nafter script");
  });
});
