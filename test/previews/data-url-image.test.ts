/** `data:` image URLs (src/previews/data-url-image.ts): decoding and hostile input. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  DataUrlImageError,
  decodeDataUrlImage,
  isDataUrl,
  maxDataUrlChars,
} from "../../src/previews/data-url-image.js";
import { htmlToOpenGraph } from "../../src/previews/html-opengraph.js";
import { parseOEmbedResponse } from "../../src/previews/oembed.js";

const PNG_MAGIC = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
const MAX = 1024;

const rejects = (url: string, pattern: RegExp, max = MAX) =>
  assert.rejects(decodeDataUrlImage(url, max), (error: unknown) => {
    assert.ok(error instanceof DataUrlImageError, String(error));
    assert.match(error.message, pattern);
    return true;
  });

describe("data: image URLs", () => {
  it("recognises the scheme case-insensitively, and nothing else", () => {
    assert.ok(isDataUrl("data:image/png;base64,AA=="));
    assert.ok(isDataUrl("  DATA:image/png,x"));
    assert.ok(!isDataUrl("https://example.org/data:x"));
    assert.ok(!isDataUrl("javascript:data:x"));
  });

  it("decodes base64, with parameters, white space and upper-case names", async () => {
    const b64 = PNG_MAGIC.toString("base64");
    for (const url of [
      `data:image/png;base64,${b64}`,
      `DATA:IMAGE/PNG;charset=x;BASE64,${b64}`,
      `data:image/png;base64,${b64.slice(0, 4)} \n${b64.slice(4)}`,
      ` data:image/png;base64,${b64} `,
    ]) {
      const image = await decodeDataUrlImage(url, MAX);
      assert.equal(image.mediaType, "image/png", url);
      assert.deepEqual(Buffer.from(image.bytes), PNG_MAGIC, url);
    }
  });

  it("decodes percent-encoding", async () => {
    const encoded = [...PNG_MAGIC].map((b) => `%${b.toString(16).padStart(2, "0")}`).join("");
    const image = await decodeDataUrlImage(`data:image/png,${encoded}`, MAX);
    assert.deepEqual(Buffer.from(image.bytes), PNG_MAGIC);
    const svg = await decodeDataUrlImage("data:image/svg+xml,%3Csvg%2F%3E", MAX);
    assert.equal(svg.mediaType, "image/svg+xml");
    assert.equal(Buffer.from(svg.bytes).toString(), "<svg/>");
  });

  it("refuses bad base64, a missing comma and other malformed URLs", async () => {
    await rejects("data:image/png;base64,@@@@", /malformed/);
    await rejects("data:image/png;base64,AAAAA", /malformed/); // impossible length
    await rejects("data:image/png;base64", /malformed/);
    await rejects("https://example.org/x.png", /not a data: URL/);
  });

  it("refuses what is not an image, and empty images", async () => {
    await rejects("data:text/html,<b>x</b>", /not an image/);
    await rejects("data:,hello", /not an image/); // text/plain by default
    await rejects("data:application/octet-stream;base64,AAAA", /not an image/);
    await rejects("data:image/;base64,AAAA", /not an image/);
    await rejects("data:image/png,", /empty/);
  });

  it("refuses an overlong URL before decoding it, and an image over the cap", async () => {
    // Hugely over: refused by length alone (nothing is decoded).
    const huge = `data:image/png;base64,${"A".repeat(maxDataUrlChars(MAX) + 1)}`;
    await rejects(huge, /too large/);
    // Within the length allowance but over the cap once decoded.
    const over = `data:image/png;base64,${Buffer.alloc(MAX + 3).toString("base64")}`;
    assert.ok(over.length <= maxDataUrlChars(MAX));
    await rejects(over, /too large/);
    // Exactly at the cap: fine.
    const at = await decodeDataUrlImage(
      `data:image/png;base64,${Buffer.alloc(MAX).toString("base64")}`,
      MAX,
    );
    assert.equal(at.bytes.length, MAX);
  });

  it("HTML keeps a data: og:image over the value cap, but not one the scanner may have cut", () => {
    const page = (image: string) =>
      htmlToOpenGraph(
        Buffer.from(
          `<meta property="og:title" content="t"><meta property="og:image" content="${image}">`,
        ),
        { pageUrl: "https://example.org/" },
      ).og["og:image"];
    const long = `data:image/png;base64,${"A".repeat(4000)}`; // over the 1,000-character cap
    assert.equal(page(long), long);
    const cut = `data:image/png;base64,${"A".repeat(10_000)}`; // cut at 8,192 by the scanner
    assert.equal(page(cut), undefined);
  });

  it("oEmbed keeps a data: thumbnail_url of any length the response allows", () => {
    const thumbnail = `data:image/png;base64,${"A".repeat(20_000)}`;
    const oembed = parseOEmbedResponse(
      Buffer.from(
        JSON.stringify({ version: "1.0", type: "link", title: "t", thumbnail_url: thumbnail }),
      ),
      "https://example.org/",
    );
    assert.equal(oembed.og["og:image"], thumbnail);
  });
});
