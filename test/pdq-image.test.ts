/**
 * hashImage: photo-like generated images (1/f value noise, shapes, a "scene")
 * survive HMA's usual edits within the match threshold and unrelated images
 * are far apart; the decode follows HMA (no EXIF rotation, alpha dropped,
 * first frame); hostile input (bombs, tiny, corrupt, animated, non-images)
 * gives no hash and a reason, never a throw.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import sharp from "sharp";
import { hammingDistance, PDQ_MATCH_THRESHOLD } from "../src/hashing/pdq.js";
import { decodeForPdq, type PdqPixels } from "../src/hashing/pdq-decode.js";
import { hashImage, type PdqImageResult } from "../src/hashing/pdq-image.js";
import { prng } from "./support/seeded-random.js";

const W = 400;
const H = 300;
const OPTIONS = { maxImagePixels: 32 * 1024 * 1024 };

/** Bilinear value noise on a g×g grid over the unit square, values in [-1, 1]. */
function valueNoise(rand: () => number, g: number): (u: number, v: number) => number {
  const grid = Float64Array.from({ length: (g + 1) * (g + 1) }, () => rand() * 2 - 1);
  const at = (y: number, x: number) => grid[y * (g + 1) + x] as number;
  return (u, v) => {
    const x0 = Math.min(g - 1, Math.floor(u * g));
    const y0 = Math.min(g - 1, Math.floor(v * g));
    const tx = u * g - x0;
    const ty = v * g - y0;
    const top = at(y0, x0) * (1 - tx) + at(y0, x0 + 1) * tx;
    const bottom = at(y0 + 1, x0) * (1 - tx) + at(y0 + 1, x0 + 1) * tx;
    return top * (1 - ty) + bottom * ty;
  };
}

type Kind = "fractal" | "shapes" | "scene";

/** Raw RGB of a photo-like image: 1/f-ish noise (like natural images), circles, a sky. */
function generate(kind: Kind, seed: number, width = W, height = H): Buffer {
  const rand = prng(seed * 7919 + kind.length);
  const octaves = [4, 8, 16, 32, 64, 128].map((g) => ({
    channels: [valueNoise(rand, g), valueNoise(rand, g), valueNoise(rand, g)],
    amplitude: 160 / Math.sqrt(g),
  }));
  const circles = Array.from({ length: 8 }, () => ({
    x: rand() * width,
    y: rand() * height,
    r: 15 + rand() * 70,
    rgb: [rand() * 255, rand() * 255, rand() * 255],
  }));
  const px = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const u = x / width;
      const v = y / height;
      let rgb = [0, 1, 2].map((c) =>
        octaves.reduce(
          (sum, o) => sum + (o.channels[c] as (u: number, v: number) => number)(u, v) * o.amplitude,
          120,
        ),
      );
      if (kind === "scene")
        rgb = v < 0.4 ? [90 + 100 * v, 140 + 150 * v, 230] : rgb.map((c) => c * 0.8);
      if (kind !== "fractal") {
        for (const c of circles) {
          if ((x - c.x) ** 2 + (y - c.y) ** 2 < c.r * c.r)
            rgb = c.rgb.map((k, i) => k * 0.7 + (rgb[i] as number) * 0.3);
        }
      }
      for (let c = 0; c < 3; c++)
        px[(y * width + x) * 3 + c] = Math.max(0, Math.min(255, Math.round(rgb[c] as number)));
    }
  }
  return px;
}

const fromRaw = (raw: Buffer, width = W, height = H) =>
  sharp(raw, { raw: { width, height, channels: 3 } });

async function hashOf(input: Buffer | string): Promise<{ hash: string; quality: number }> {
  const result = await hashImage(input, OPTIONS);
  assert.ok(result.hash !== null, `expected a hash, got ${JSON.stringify(result)}`);
  return result as { hash: string; quality: number };
}

function assertNoHash(result: PdqImageResult, reason: RegExp): void {
  assert.equal(result.hash, null, JSON.stringify(result));
  assert.match((result as { reason: string }).reason, reason);
}

const temp = mkdtempSync(join(tmpdir(), "mxcd-pdq-"));
after(() => rmSync(temp, { recursive: true, force: true }));

describe("hashImage: edits stay within the match threshold, unrelated images do not", () => {
  const originals: string[] = [];
  const cases: Array<[Kind, number]> = [
    ["fractal", 1],
    ["fractal", 2],
    ["shapes", 1],
    ["shapes", 2],
    ["scene", 1],
    ["scene", 2],
  ];
  for (const [kind, seed] of cases) {
    it(`${kind} ${seed}: JPEG q=50, half size, 1-pixel crop, brightness +10%`, async () => {
      const raw = generate(kind, seed);
      const original = await hashOf(await fromRaw(raw).png().toBuffer());
      assert.ok(original.quality >= 50);
      originals.push(original.hash);
      const edits: Record<string, Buffer> = {
        jpeg50: await fromRaw(raw).jpeg({ quality: 50 }).toBuffer(),
        half: await fromRaw(raw)
          .resize(W / 2, H / 2)
          .png()
          .toBuffer(),
        crop: await fromRaw(raw)
          .extract({ left: 1, top: 1, width: W - 2, height: H - 2 })
          .png()
          .toBuffer(),
        brighter: await fromRaw(raw).modulate({ brightness: 1.1 }).png().toBuffer(),
      };
      for (const [edit, bytes] of Object.entries(edits)) {
        const distance = hammingDistance(original.hash, (await hashOf(bytes)).hash);
        assert.ok(distance <= PDQ_MATCH_THRESHOLD, `${edit}: distance ${distance}`);
      }
    });
  }

  it("unrelated images are more than 80 bits apart", () => {
    assert.equal(originals.length, cases.length);
    for (let i = 0; i < originals.length; i++) {
      for (let j = i + 1; j < originals.length; j++) {
        const distance = hammingDistance(originals[i] as string, originals[j] as string);
        assert.ok(distance > 80, `${i} vs ${j}: ${distance}`);
      }
    }
  });
});

describe("hashImage decodes as HMA", () => {
  const raw = generate("shapes", 3);

  it("does not apply EXIF rotation", async () => {
    const plain = await hashOf(await fromRaw(raw).jpeg({ quality: 90 }).toBuffer());
    const tagged = await hashOf(
      await fromRaw(raw).jpeg({ quality: 90 }).withMetadata({ orientation: 6 }).toBuffer(),
    );
    const rotated = await hashOf(await fromRaw(raw).rotate(90).jpeg({ quality: 90 }).toBuffer());
    assert.equal(tagged.hash, plain.hash);
    assert.ok(hammingDistance(rotated.hash, plain.hash) > PDQ_MATCH_THRESHOLD);
  });

  it("drops alpha (not composited)", async () => {
    const rgba = Buffer.alloc(W * H * 4);
    for (let p = 0; p < W * H; p++) {
      raw.copy(rgba, p * 4, p * 3, p * 3 + 3);
      rgba[p * 4 + 3] = (p * 37) % 256;
    }
    const withAlpha = sharp(rgba, { raw: { width: W, height: H, channels: 4 } })
      .png()
      .toBuffer();
    assert.equal(
      (await hashOf(await withAlpha)).hash,
      (await hashOf(await fromRaw(raw).png().toBuffer())).hash,
    );
  });

  it("hashes a grey image by its values, and a file path as its bytes", async () => {
    const grey = Buffer.alloc(W * H);
    for (let p = 0; p < W * H; p++) grey[p] = raw[p * 3] as number;
    const greyPng = await sharp(grey, { raw: { width: W, height: H, channels: 1 } })
      .png()
      .toBuffer();
    const asRgb = Buffer.alloc(W * H * 3);
    for (let p = 0; p < W * H; p++) asRgb.fill(grey[p] as number, p * 3, p * 3 + 3);
    const greyHash = await hashOf(greyPng);
    assert.ok(
      hammingDistance(greyHash.hash, (await hashOf(await fromRaw(asRgb).png().toBuffer())).hash) <=
        2,
    );
    const path = join(temp, "grey.png");
    writeFileSync(path, greyPng);
    assert.deepEqual(await hashOf(path), greyHash);
  });

  it("keeps the stored values of an ICC-tagged image (no colour management, as PIL)", async () => {
    const tagged = await fromRaw(raw).withIccProfile("p3").png().toBuffer();
    assert.ok((await sharp(tagged).metadata()).icc);
    const untagged = withoutChunk(tagged, "iCCP");
    assert.equal((await sharp(untagged).metadata()).icc, undefined);
    const kept = (await decodeForPdq(tagged, OPTIONS.maxImagePixels)) as PdqPixels;
    assert.deepEqual(
      kept.data,
      ((await decodeForPdq(untagged, OPTIONS.maxImagePixels)) as PdqPixels).data,
    );
    // The test can tell: libvips' colour-managed decode of the same file differs.
    assert.notDeepEqual(kept.data, await sharp(tagged).removeAlpha().raw().toBuffer());
  });

  it("drops alpha at the pixel level: the RGB samples as stored", async () => {
    const rgba = Buffer.alloc(8 * 8 * 4, 0);
    for (let p = 0; p < 64; p++) rgba.set([p * 4, 255 - p * 4, p, p % 2 ? 0 : 255], p * 4);
    const png = await sharp(rgba, { raw: { width: 8, height: 8, channels: 4 } })
      .png()
      .toBuffer();
    const decoded = (await decodeForPdq(png, OPTIONS.maxImagePixels)) as PdqPixels;
    assert.equal(decoded.channels, 3);
    for (let p = 0; p < 64; p++)
      assert.deepEqual([...decoded.data.subarray(p * 3, p * 3 + 3)], [p * 4, 255 - p * 4, p]);
  });

  for (const format of ["gif", "webp"] as const) {
    it(`hashes the first frame of an animated ${format}`, async () => {
      const first = generate("fractal", 5);
      const second = generate("scene", 6);
      const frames = Buffer.concat([first, second]);
      const animated = sharp(frames, {
        raw: { width: W, height: H * 2, channels: 3, pageHeight: H },
      });
      const bytes = await (format === "gif"
        ? animated.gif()
        : animated.webp({ quality: 90 })
      ).toBuffer();
      assert.equal((await sharp(bytes).metadata()).pages, 2);
      const hash = (await hashOf(bytes)).hash;
      const firstHash = (await hashOf(await fromRaw(first).png().toBuffer())).hash;
      const secondHash = (await hashOf(await fromRaw(second).png().toBuffer())).hash;
      assert.ok(hammingDistance(hash, firstHash) <= PDQ_MATCH_THRESHOLD);
      assert.ok(hammingDistance(hash, secondHash) > PDQ_MATCH_THRESHOLD);
    });
  }
});

/** A PNG without its chunks of `type` (e.g. the ICC profile). */
function withoutChunk(png: Buffer, type: string): Buffer {
  const parts = [png.subarray(0, 8)];
  for (let at = 8; at < png.length; ) {
    const length = png.readUInt32BE(at);
    const end = at + 12 + length;
    if (png.toString("latin1", at + 4, at + 8) !== type) parts.push(png.subarray(at, end));
    at = end;
  }
  return Buffer.concat(parts);
}

/** A PNG whose IHDR claims `width`×`height` (CRC fixed), the IDAT of a tiny image. */
async function pngClaiming(width: number, height: number): Promise<Buffer> {
  const png = Buffer.from(
    await sharp({ create: { width: 8, height: 8, channels: 3, background: "#808080" } })
      .png()
      .toBuffer(),
  );
  png.writeUInt32BE(width, 16);
  png.writeUInt32BE(height, 20);
  png.writeUInt32BE(crc32(png.subarray(12, 29)), 29);
  return png;
}

function crc32(bytes: Uint8Array): number {
  let crc = 0xffffffff;
  for (const byte of bytes) {
    crc ^= byte;
    for (let k = 0; k < 8; k++) crc = crc & 1 ? (crc >>> 1) ^ 0xedb88320 : crc >>> 1;
  }
  return (crc ^ 0xffffffff) >>> 0;
}

describe("hashImage on hostile input: no hash, a reason, never a throw", () => {
  it("a decompression bomb over max_image_pixels (header and real)", async () => {
    assertNoHash(await hashImage(await pngClaiming(100_000, 100_000), OPTIONS), /too large/);
    // A real one: 6000×6000 of one grey, a few KiB of PNG, 36 Mpx.
    const bomb = await sharp({
      create: { width: 6000, height: 6000, channels: 3, background: "#202020" },
    })
      .toColourspace("b-w")
      .png({ compressionLevel: 9 })
      .toBuffer();
    assert.ok(bomb.length < 200_000);
    assertNoHash(await hashImage(bomb, OPTIONS), /too large/);
    assertNoHash(
      await hashImage(await fromRaw(generate("fractal", 1)).png().toBuffer(), {
        maxImagePixels: 1000,
      }),
      /too large/,
    );
  });

  it("images under 5×5, and a flat image (low quality)", async () => {
    for (const [width, height] of [
      [1, 1],
      [5, 4],
      [4, 5],
    ] as const) {
      const png = await sharp({ create: { width, height, channels: 3, background: "#123456" } })
        .png()
        .toBuffer();
      const result = await hashImage(png, OPTIONS);
      assertNoHash(result, /too small/);
      assert.equal(result.quality, 0);
    }
    const flat = await sharp({
      create: { width: 100, height: 100, channels: 3, background: "#123456" },
    })
      .png()
      .toBuffer();
    assert.deepEqual(await hashImage(flat, OPTIONS), {
      hash: null,
      quality: 0,
      reason: "low quality",
    });
  });

  it("truncated and corrupt files", async () => {
    const jpeg = await fromRaw(generate("scene", 3)).jpeg({ quality: 80 }).toBuffer();
    const png = await fromRaw(generate("scene", 3)).png().toBuffer();
    assertNoHash(await hashImage(jpeg.subarray(0, jpeg.length >> 1), OPTIONS), /undecodable/);
    assertNoHash(await hashImage(png.subarray(0, png.length >> 1), OPTIONS), /undecodable/);
    assertNoHash(await hashImage(jpeg.subarray(0, 20), OPTIONS), /undecodable/);
    const garbled = Buffer.from(png);
    for (let at = 200; at < garbled.length; at += 97) garbled[at] = (garbled[at] as number) ^ 0x5a;
    assertNoHash(await hashImage(garbled, OPTIONS), /undecodable/);
    const noise = Buffer.concat([Buffer.from([0xff, 0xd8, 0xff]), Buffer.alloc(5000, 0x41)]);
    assertNoHash(await hashImage(noise, OPTIONS), /undecodable/);
  });

  it("non-images, an empty buffer, a missing file", async () => {
    const svg = Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="100" height="100"/>');
    for (const bytes of [Buffer.from("hello, world\n".repeat(100)), Buffer.alloc(0), svg]) {
      assertNoHash(await hashImage(bytes, OPTIONS), /not an image/);
    }
    assertNoHash(await hashImage(join(temp, "missing.png"), OPTIONS), /unreadable/);
    const text = join(temp, "notes.txt");
    writeFileSync(text, "not an image");
    assertNoHash(await hashImage(text, OPTIONS), /not an image/);
  });
});
