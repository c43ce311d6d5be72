/**
 * The bounded shrink-on-load decode for PDQ (pdq-decode.ts `minSide`,
 * hashImage `decodeMinSide`): which decoder scale is picked, that the
 * max_image_pixels bound stays on the full size, that only JPEG and WebP are
 * shrunk, and that the hash stays within the PDQ port-acceptance distance of
 * the exact full-resolution hash on a photo-like image. Generated images
 * only (the real-photo measurements are in bench/pdq-tradeoff.ts).
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { hammingDistance } from "../src/hashing/pdq.js";
import { decodeForPdq, shrinkOnLoad } from "../src/hashing/pdq-decode.js";
import { hashImage } from "../src/hashing/pdq-image.js";
import { photoLike } from "./support/photo-like.js";

const MAX = 32 * 1024 * 1024;

describe("shrinkOnLoad: the decoder scale kept above the floor", () => {
  it("picks the largest of 2, 4, 8 whose shorter side stays >= minSide", () => {
    assert.equal(shrinkOnLoad("jpeg", 4000, 3000, 1024), 2);
    assert.equal(shrinkOnLoad("jpeg", 4000, 3000, 512), 4);
    assert.equal(shrinkOnLoad("jpeg", 4000, 3000, 256), 8);
    assert.equal(shrinkOnLoad("jpeg", 4000, 3000, 64), 8, "never past 1/8 (libjpeg's limit)");
    assert.equal(shrinkOnLoad("webp", 3000, 4000, 1024), 2, "the shorter side, portrait too");
    assert.equal(shrinkOnLoad("jpeg", 2560, 1600, 1024), 1, "800 would be under the floor");
    assert.equal(shrinkOnLoad("jpeg", 2048, 2048, 1024), 2, "exactly the floor is kept");
  });

  it("full resolution when unset, and for formats without a scaled decode", () => {
    assert.equal(shrinkOnLoad("jpeg", 4000, 3000, null), 1);
    assert.equal(shrinkOnLoad("jpeg", 4000, 3000, undefined), 1);
    assert.equal(shrinkOnLoad("png", 4000, 3000, 256), 1);
    assert.equal(shrinkOnLoad("gif", 4000, 3000, 256), 1);
    assert.equal(shrinkOnLoad(undefined, 4000, 3000, 256), 1);
  });
});

describe("decodeForPdq with minSide", () => {
  it("decodes a JPEG at the decoder's scaled size", async () => {
    const jpeg = await (await photoLike(1001, 750, 1)).jpeg({ quality: 90 }).toBuffer();
    const full = await decodeForPdq(jpeg, MAX);
    const half = await decodeForPdq(jpeg, MAX, { minSide: 300 });
    const eighth = await decodeForPdq(jpeg, MAX, { minSide: 10 });
    assert.ok(!("reason" in full) && !("reason" in half) && !("reason" in eighth));
    assert.deepEqual([full.width, full.height], [1001, 750]);
    assert.deepEqual([half.width, half.height], [501, 375]);
    assert.deepEqual([eighth.width, eighth.height], [126, 94]);
  });

  it("a PNG and a progressive JPEG stay at full resolution", async () => {
    const image = await photoLike(600, 400, 2);
    for (const bytes of [
      await image.png().toBuffer(),
      await image.jpeg({ progressive: true }).toBuffer(),
    ]) {
      const decoded = await decodeForPdq(bytes, MAX, { minSide: 100 });
      assert.ok(!("reason" in decoded));
      assert.deepEqual([decoded.width, decoded.height], [600, 400]);
    }
  });

  it("max_image_pixels bounds the full size, not the shrunk one", async () => {
    const jpeg = await (await photoLike(1000, 800, 3)).jpeg().toBuffer();
    // 1000×800 = 800,000 px; at 1/8 it would be 125×100 = 12,500 px.
    const refused = await decodeForPdq(jpeg, 500_000, { minSide: 50 });
    assert.ok("reason" in refused);
    assert.match(refused.reason, /too large/);
    const result = await hashImage(jpeg, { maxImagePixels: 500_000, decodeMinSide: 50 });
    assert.equal(result.hash, null);
    assert.ok(result.hash === null && /too large/.test(result.reason));
  });
});

describe("hashImage with decodeMinSide", () => {
  it("is the exact hash when the floor allows no shrink, and for a PNG", async () => {
    const image = await photoLike(800, 600, 4);
    for (const bytes of [await image.jpeg().toBuffer(), await image.png().toBuffer()]) {
      const exact = await hashImage(bytes, { maxImagePixels: MAX });
      const floored = await hashImage(bytes, { maxImagePixels: MAX, decodeMinSide: 400 });
      assert.ok(exact.hash !== null);
      assert.deepEqual(floored, exact);
    }
  });

  it("stays within 10 bits of the exact hash at a 1/2 and 1/4 scale (port acceptance)", async () => {
    for (const seed of [5, 6, 7]) {
      const jpeg = await (await photoLike(2048, 1536, seed)).jpeg({ quality: 85 }).toBuffer();
      const exact = await hashImage(jpeg, { maxImagePixels: MAX });
      assert.ok(exact.hash !== null && exact.quality >= 80, "a quality >= 80 image");
      for (const minSide of [768, 384]) {
        const cheap = await hashImage(jpeg, { maxImagePixels: MAX, decodeMinSide: minSide });
        assert.ok(cheap.hash !== null);
        const d = hammingDistance(exact.hash, cheap.hash);
        assert.ok(d <= 10, `seed ${seed}, minSide ${minSide}: ${d} bits`);
      }
    }
  });
});
