import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { readBodyPrefix } from "../../src/previews/body-prefix.js";
import { htmlToOpenGraph } from "../../src/previews/html-opengraph.js";
import { oembedToOpenGraph } from "../../src/previews/oembed.js";
import {
  combineHtmlAndOEmbed,
  finishPreview,
  imagePreview,
  MAX_PREVIEW_TTL_MS,
  oembedOnlyPreview,
  previewImageUrl,
  previewTtlMs,
  withStoredImage,
} from "../../src/previews/preview-result.js";

const PAGE = "https://example.org/post/1";
const IMAGE = { mxcUri: "mxc://example.org/abc", mediaType: "image/png", size: 1234 };

describe("combining a preview", () => {
  it("the page's tags win over its oEmbed data; oEmbed fills the gaps", () => {
    const html = htmlToOpenGraph(
      new TextEncoder().encode(
        `<meta property="og:title" content="Page title"><meta property="og:description" content="Page text">`,
      ),
      { pageUrl: PAGE },
    );
    const oembed = oembedToOpenGraph(
      {
        type: "rich",
        title: "oEmbed stub",
        provider_name: "Site",
        thumbnail_url: "https://img.example.org/t.jpg",
        html: "<p>stub</p>",
      },
      PAGE,
    );
    assert.deepEqual(combineHtmlAndOEmbed(html.og, oembed), {
      "og:url": PAGE,
      "og:title": "Page title",
      "og:description": "Page text",
      "og:site_name": "Site",
      "og:image": "https://img.example.org/t.jpg",
    });
  });

  it("author_name stands in for a missing title", () => {
    const oembed = oembedToOpenGraph(
      { type: "photo", url: "https://i.example/p.jpg", author_name: "Ann" },
      PAGE,
    );
    assert.equal(oembedOnlyPreview(oembed)["og:title"], "Ann");
    assert.equal(combineHtmlAndOEmbed({ "og:title": "T" }, oembed)["og:title"], "T");
  });

  it("a preview with no title, description or image is {}", () => {
    assert.deepEqual(finishPreview({ "og:url": PAGE, "og:site_name": "Site" }), {});
    assert.deepEqual(oembedOnlyPreview(oembedToOpenGraph({ type: "link" }, PAGE)), {});
    assert.deepEqual(oembedOnlyPreview({ og: {} }), {});
    assert.deepEqual(combineHtmlAndOEmbed({}), {});
  });

  it("caps keys and values of the combined preview", () => {
    const og = finishPreview({
      "og:title": "T",
      [`og:${"k".repeat(60)}`]: "v",
      "og:x": "v".repeat(1001),
    });
    assert.deepEqual(og, { "og:title": "T" });
  });
});

describe("images", () => {
  it("a direct image URL previews as the stored image", () => {
    assert.deepEqual(imagePreview({ ...IMAGE, width: 640, height: 480 }, "cat.png"), {
      "og:image": "mxc://example.org/abc",
      "og:image:type": "image/png",
      "matrix:image:size": 1234,
      "og:image:width": 640,
      "og:image:height": 480,
      "og:description": "cat.png",
    });
    assert.deepEqual(imagePreview(IMAGE), {
      "og:image": "mxc://example.org/abc",
      "og:image:type": "image/png",
      "matrix:image:size": 1234,
    });
  });

  it("a page's image is replaced by the stored copy, or dropped when storing failed", () => {
    const og = { "og:title": "T", "og:image": "https://img.example.org/t.jpg" };
    assert.equal(previewImageUrl(og), "https://img.example.org/t.jpg");
    assert.deepEqual(withStoredImage(og, { ...IMAGE, width: 10, height: 20 }), {
      "og:title": "T",
      "og:image": "mxc://example.org/abc",
      "og:image:type": "image/png",
      "matrix:image:size": 1234,
      "og:image:width": 10,
      "og:image:height": 20,
    });
    assert.deepEqual(withStoredImage(og, undefined), { "og:title": "T" });
    assert.deepEqual(withStoredImage({ "og:image": "https://i.example/x.png" }, undefined), {});
    assert.equal(previewImageUrl({ "og:image": "mxc://example.org/abc" }), undefined);
  });

  it("freshness: oEmbed cache_age or one hour, never more than a day", () => {
    assert.equal(previewTtlMs(), 3_600_000);
    assert.equal(previewTtlMs(60_000), 60_000);
    assert.equal(previewTtlMs(7 * MAX_PREVIEW_TTL_MS), MAX_PREVIEW_TTL_MS);
  });
});

describe("reading a bounded body prefix", () => {
  it("stops pulling chunks at the limit and releases the source", async () => {
    let pulled = 0;
    let released = false;
    async function* endless(): AsyncGenerator<Uint8Array> {
      try {
        for (;;) {
          pulled += 1;
          yield new Uint8Array(1000).fill(0x61);
        }
      } finally {
        released = true;
      }
    }
    const prefix = await readBodyPrefix(endless(), 4500);
    assert.equal(prefix.bytes.length, 4500);
    assert.equal(prefix.truncated, true);
    assert.equal(pulled, 5);
    assert.equal(released, true);
  });

  it("a short body is read whole and not truncated", async () => {
    async function* two(): AsyncGenerator<Uint8Array> {
      yield Uint8Array.from([1, 2]);
      yield Uint8Array.from([3]);
    }
    assert.deepEqual(await readBodyPrefix(two(), 10), {
      bytes: Uint8Array.from([1, 2, 3]),
      truncated: false,
    });
  });
});
