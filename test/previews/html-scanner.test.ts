import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  type HtmlSink,
  MAX_ATTRIBUTE_VALUE_CHARS,
  MAX_ATTRIBUTES_PER_TAG,
  MAX_OPEN_ELEMENTS,
  scanHtml,
} from "../../src/previews/html-scanner.js";

type Event = string;

/** Records the scanner's events as short strings. */
function record(html: string): { events: Event[]; attributes: Map<string, string>[] } {
  const events: Event[] = [];
  const attributes: Map<string, string>[] = [];
  const sink: HtmlSink = {
    openTag(name, attrs, pushed) {
      events.push(pushed ? `<${name}>` : `<${name}!>`);
      attributes.push(new Map(attrs));
    },
    closeTag(name) {
      events.push(`</${name}>`);
    },
    text(data, deep) {
      events.push(deep ? `~${data}` : data);
    },
  };
  scanHtml(html, sink);
  return { events, attributes };
}

describe("bounded HTML scanner", () => {
  it("reports balanced open and close events, void elements closed at once", () => {
    assert.deepEqual(record("<div><p>a<br>b</div>c<img src=x></p>").events, [
      "<div>",
      "<p>",
      "a",
      "<br>",
      "</br>",
      "b",
      "</p>",
      "</div>",
      "c",
      "<img>",
      "</img>",
    ]);
  });

  it("closes whatever is left open at the end", () => {
    assert.deepEqual(record("<ul><li>one").events, ["<ul>", "<li>", "one", "</li>", "</ul>"]);
  });

  it("<p>, <li>, <td> and block elements close an unclosed <p>/<li>/<td> on top", () => {
    assert.deepEqual(record("<p>a<p>b<div>c</div>").events, [
      "<p>",
      "a",
      "</p>",
      "<p>",
      "b",
      "</p>",
      "<div>",
      "c",
      "</div>",
    ]);
    assert.deepEqual(record("<ul><li>a<li>b</ul>").events, [
      "<ul>",
      "<li>",
      "a",
      "</li>",
      "<li>",
      "b",
      "</li>",
      "</ul>",
    ]);
    // 1,000 unclosed list items never fill the stack.
    const stats = scanHtml(`<ul>${"<li>x".repeat(1000)}</ul>`, {
      openTag() {},
      closeTag() {},
      text() {},
    });
    assert.equal(stats.maxDepth, 2);
    assert.equal(stats.overflowed, 0);
  });

  it("an unclosed <head> ends at <body>, at body content, or at non-blank text", () => {
    assert.deepEqual(record("<head><meta><body>x").events, [
      "<head>",
      "<meta>",
      "</meta>",
      "</head>",
      "<body>",
      "x",
      "</body>",
    ]);
    assert.deepEqual(record("<head><title>t</title><div>").events.slice(-3), [
      "</head>",
      "<div>",
      "</div>",
    ]);
    assert.deepEqual(record("<head> text").events, ["<head>", "</head>", " text"]);
  });

  it(`keeps at most ${MAX_OPEN_ELEMENTS} elements open; deeper ones are counted, their text is deep`, () => {
    const depth = MAX_OPEN_ELEMENTS + 3;
    const { events } = record(`${"<div>".repeat(depth)}x${"</div>".repeat(depth)}<p>y</p>`);
    assert.equal(events.filter((e) => e === "<div>").length, MAX_OPEN_ELEMENTS);
    assert.equal(events.filter((e) => e === "<div!>").length, 3);
    assert.ok(events.includes("~x"));
    assert.equal(events.filter((e) => e === "</div>").length, MAX_OPEN_ELEMENTS);
    assert.deepEqual(events.slice(-3), ["<p>", "y", "</p>"]);
    const stats = scanHtml("<div>".repeat(100_000), { openTag() {}, closeTag() {}, text() {} });
    assert.equal(stats.maxDepth, MAX_OPEN_ELEMENTS);
    assert.equal(stats.overflowed, 100_000 - MAX_OPEN_ELEMENTS);
  });

  it("a raw-text element on a full stack is still a pair, its text not deep", () => {
    const html = `${"<div>".repeat(MAX_OPEN_ELEMENTS)}<title>T</title>`;
    assert.deepEqual(record(html).events.slice(MAX_OPEN_ELEMENTS, MAX_OPEN_ELEMENTS + 3), [
      "<title>",
      "T",
      "</title>",
    ]);
  });

  it("caps attribute values while reading them", () => {
    const value = "v".repeat(MAX_ATTRIBUTE_VALUE_CHARS * 4);
    const entities = "&amp;".repeat(MAX_ATTRIBUTE_VALUE_CHARS * 2);
    const { attributes } = record(`<meta content="${value}" title="${entities}">`);
    assert.equal(attributes[0]!.get("content")!.length, MAX_ATTRIBUTE_VALUE_CHARS);
    assert.equal(attributes[0]!.get("title")!.length, MAX_ATTRIBUTE_VALUE_CHARS);
  });

  it("keeps the first of duplicate attributes, a bounded number of them, and no overlong names", () => {
    const many = Array.from({ length: MAX_ATTRIBUTES_PER_TAG + 10 }, (_, i) => `a${i}=x`).join(" ");
    const { attributes } = record(
      `<meta NAME=first name=second ${"n".repeat(100)}=long><img ${many}>`,
    );
    assert.equal(attributes[0]!.get("name"), "first");
    assert.equal(attributes[0]!.size, 1);
    assert.equal(attributes[1]!.size, MAX_ATTRIBUTES_PER_TAG);
  });

  it("decodes entities in text and attributes; comments and doctype are not text", () => {
    const { events, attributes } = record(
      `<!DOCTYPE html><!-- c --><a title="&lt;x&gt;">&eacute;&#x41;</a>`,
    );
    assert.equal(attributes[0]!.get("title"), "<x>");
    assert.equal(events.filter((e) => !e.startsWith("<")).join(""), "éA");
  });
});
