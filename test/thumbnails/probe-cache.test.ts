import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ProbeCache } from "../../src/thumbnails/probe-cache.js";
import type { ImageInfo } from "../../src/thumbnails/thumbnailer.js";

const info = (width: number): ImageInfo => ({
  format: "png",
  contentType: "image/png",
  width,
  height: 1,
  orientation: 1,
  pages: 1,
  animated: false,
  hasAlpha: false,
});

describe("ProbeCache", () => {
  it("remembers outcomes, 'not an image' (null) included", () => {
    const cache = new ProbeCache(4);
    cache.set("a", info(1));
    cache.set("b", null);
    assert.equal(cache.get("a")?.width, 1);
    assert.equal(cache.get("b"), null);
    assert.equal(cache.get("c"), undefined);
  });

  it("never holds more than its capacity, however many keys arrive", () => {
    const cache = new ProbeCache(100);
    for (let i = 0; i < 10_000; i++) cache.set(`k${i}`, info(i));
    assert.equal(cache.size, 100);
    assert.equal(cache.get("k0"), undefined);
    assert.equal(cache.get("k9999")?.width, 9999);
  });

  it("evicts the least recently used entry", () => {
    const cache = new ProbeCache(2);
    cache.set("a", info(1));
    cache.set("b", info(2));
    cache.get("a");
    cache.set("c", info(3));
    assert.equal(cache.get("b"), undefined);
    assert.equal(cache.get("a")?.width, 1);
    assert.equal(cache.get("c")?.width, 3);
  });

  it("refuses a capacity below one", () => {
    assert.throws(() => new ProbeCache(0), RangeError);
  });
});
