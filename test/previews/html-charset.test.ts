import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import {
  CHARSET_PRESCAN_BYTES,
  charsetParameter,
  decodeHtml,
  decodeWindows1252,
} from "../../src/previews/html-charset.js";
import { htmlToOpenGraph } from "../../src/previews/html-opengraph.js";
import { REPO_URL } from "../support/repo-url.js";

const latin1 = (text: string) => Buffer.from(text, "latin1");
const utf8 = (text: string) => Buffer.from(text, "utf8");
/** "é" in windows-1252 and ISO-8859-x is 0xE9; in KOI8-R 0xE9 is "И". */
const E_ACUTE_1252 = "\xe9";

describe("charset detection in Synapse's order", () => {
  it("an undeclared cp1252 page falls back to windows-1252 (Synapse's anchor: \\xf3 → ó)", () => {
    const { og } = htmlToOpenGraph(latin1("<html><head><title>\xf3</title></head></html>"), {
      pageUrl: "https://example.org/",
    });
    assert.equal(og["og:title"], "ó");
  });

  it("decodes the cp1252 fixture, smart quotes and euro sign included", () => {
    const body = readFileSync(new URL("test/previews/fixtures/cp1252-page.bin", REPO_URL));
    const result = htmlToOpenGraph(body, { pageUrl: "https://example.org/" });
    assert.equal(result.encoding, "windows-1252");
    assert.equal(result.og["og:title"], "Café “quoted”");
    assert.equal(result.og["og:description"], "Crème brûlée – € 5");
  });

  it("undeclared valid UTF-8 is UTF-8", () => {
    const decoded = decodeHtml(utf8("<title>Ça été</title>"), undefined);
    assert.equal(decoded.encoding, "utf-8");
    assert.ok(decoded.text.includes("Ça été"));
  });

  it("<meta charset> wins over the header and over UTF-8", () => {
    const body = latin1(`<meta charset="koi8-r"><title>${E_ACUTE_1252}</title>`);
    const decoded = decodeHtml(body, "text/html; charset=iso-8859-1");
    assert.equal(decoded.encoding, "koi8-r");
    assert.ok(decoded.text.includes("<title>И</title>"));
  });

  it("<meta http-equiv=Content-Type content='…; charset=…'> counts as a meta charset", () => {
    const body = latin1(
      `<meta http-equiv="Content-Type" content="text/html; charset=KOI8-R"><title>${E_ACUTE_1252}</title>`,
    );
    assert.equal(decodeHtml(body, "text/html; charset=utf-8").encoding, "koi8-r");
    // A content= with charset= on an unrelated meta is not a declaration.
    const other = latin1(
      `<meta name="x" content="text/html; charset=koi8-r"><title>${E_ACUTE_1252}</title>`,
    );
    assert.equal(decodeHtml(other, undefined).encoding, "windows-1252");
  });

  it("the XML declaration comes after <meta> and before the header", () => {
    const xml = `<?xml version="1.0" encoding='koi8-r'?><html><title>${E_ACUTE_1252}</title></html>`;
    assert.equal(
      decodeHtml(latin1(xml), "application/xhtml+xml; charset=utf-8").encoding,
      "koi8-r",
    );
    const withMeta = `<?xml version="1.0" encoding="koi8-r"?><meta charset="iso-8859-2">`;
    assert.equal(decodeHtml(latin1(withMeta), undefined).encoding, "iso-8859-2");
  });

  it("the Content-Type header's charset comes before the UTF-8 guess", () => {
    const body = latin1(`<title>${E_ACUTE_1252}</title>`);
    assert.equal(decodeHtml(body, 'text/html; charset="koi8-r"').encoding, "koi8-r");
    assert.equal(decodeHtml(body, "text/html").encoding, "windows-1252");
  });

  it("a declaration that does not decode, or is no encoding, is skipped", () => {
    // Declared UTF-8 but the bytes are not: the next candidate wins.
    const body = latin1(`<meta charset="utf-8"><title>${E_ACUTE_1252}</title>`);
    assert.equal(decodeHtml(body, undefined).encoding, "windows-1252");
    const unknown = latin1(`<meta charset="no-such-charset"><title>x</title>`);
    assert.equal(decodeHtml(unknown, "text/html; charset=also-unknown").encoding, "utf-8");
  });

  it(`a <meta charset> past the first ${CHARSET_PRESCAN_BYTES} bytes is not read`, () => {
    const late = latin1(
      `<!--${"x".repeat(CHARSET_PRESCAN_BYTES)}--><meta charset="koi8-r"><title>${E_ACUTE_1252}</title>`,
    );
    assert.equal(decodeHtml(late, undefined).encoding, "windows-1252");
  });

  it("a byte-order mark wins over every declaration; a meta UTF-16 means UTF-8", () => {
    const bom = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), utf8(`<meta charset="koi8-r">é`)]);
    const decoded = decodeHtml(bom, "text/html; charset=koi8-r");
    assert.equal(decoded.encoding, "utf-8");
    assert.ok(decoded.text.endsWith("é") && !decoded.text.startsWith("\ufeff"));
    const utf16le = Buffer.concat([
      Buffer.from([0xff, 0xfe]),
      Buffer.from("<title>ü</title>", "utf16le"),
    ]);
    assert.equal(decodeHtml(utf16le, undefined).text, "<title>ü</title>");
    assert.equal(decodeHtml(utf8(`<meta charset="utf-16">é`), undefined).encoding, "utf-8");
  });

  it("a prefix cut inside a UTF-8 character is still UTF-8", () => {
    const body = utf8(`<title>${"é".repeat(10)}</title>`);
    const cut = body.subarray(0, 8); // "<title>" + the first byte of "é"
    assert.equal(decodeHtml(cut, undefined, true).encoding, "utf-8");
    assert.equal(decodeHtml(cut, undefined, false).encoding, "windows-1252");
    const { encoding } = htmlToOpenGraph(body, { pageUrl: "https://example.org/", maxBytes: 8 });
    assert.equal(encoding, "utf-8");
  });
});

describe("decodeWindows1252", () => {
  it("maps 0x80–0x9F as WHATWG does (Node 20's TextDecoder reads them as Latin-1)", () => {
    const decoded = decodeWindows1252(Uint8Array.from([0x80, 0x81, 0x8a, 0x93, 0x9f, 0x41, 0xff]));
    assert.equal(decoded, "€\u0081Š“ŸAÿ");
  });
});

describe("charsetParameter", () => {
  it("reads the charset parameter of a media type", () => {
    assert.equal(charsetParameter("text/html; charset=UTF-8"), "UTF-8");
    assert.equal(charsetParameter('text/html;CHARSET="iso-8859-1"; q=1'), "iso-8859-1");
    assert.equal(charsetParameter("text/html; foo=bar"), undefined);
    assert.equal(charsetParameter("text/html; charset="), undefined);
    assert.equal(charsetParameter("charset=utf-8"), undefined);
  });
});
