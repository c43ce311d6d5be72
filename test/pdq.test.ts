/**
 * PDQ against the exact synthetic vectors of media-gaps.md §5.3(a), computed
 * with Meta's reference code (C++ float32 and Python float64 agree on every
 * row), and the dihedral variants of B 64×64, both from the one DCT and as the
 * hash of the transformed array (§5.1 table).
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  hammingDistance,
  isPdqHash,
  PDQ_DIHEDRAL_NAMES,
  PDQ_MATCH_THRESHOLD,
  PDQ_QUALITY_THRESHOLD,
  pdqDihedralFromLuma,
  pdqFromLuma,
  pdqFromPixels,
} from "../src/hashing/pdq.js";

type Fill = (i: number, j: number) => number;
const A: Fill = (i, j) => (37 * i + 91 * j + 13 * i * j) % 256;
const B: Fill = (i, j) => Math.floor((i * i + 3 * j * j + 7 * i * j) / 5) % 256;
const L: Fill = (i, j) => (2 * i + j + ((i * j) % 5)) % 256;
const M: Fill = (i, j) => Math.floor((i * j) / 40) % 256;

function luma(rows: number, cols: number, fill: Fill): Float64Array {
  const out = new Float64Array(rows * cols);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) out[i * cols + j] = fill(i, j);
  return out;
}

/** The RGB vector: R = (3i+j), G = ij, B = (255-i-2j), each mod 256. */
function rgb(rows: number, cols: number): Uint8Array {
  const out = new Uint8Array(rows * cols * 3);
  for (let i = 0; i < rows; i++) {
    for (let j = 0; j < cols; j++) {
      const at = (i * cols + j) * 3;
      out[at] = (3 * i + j) % 256;
      out[at + 1] = (i * j) % 256;
      out[at + 2] = (((255 - i - 2 * j) % 256) + 256) % 256;
    }
  }
  return out;
}

const VECTORS: Array<[string, Fill, number, number, string, number]> = [
  ["A", A, 200, 300, "e5c4d18d93ccef31eb31a02bab221fd40b8c95ccee31c364576bca48ea135b6c", 100],
  ["B", B, 64, 64, "3b7d786b793178bb7072f2fee054e1fc80ea01a445f0fff4efc0ff80b1009200", 100],
  ["B", B, 200, 300, "f4d84c996cd171d37d97b93291b3f8a032ed366c264d364c66260fadd110cd33", 100],
  ["L", L, 64, 64, "00005555000055570015557f015557ff015557ff05555fff05555fff15555fff", 32],
  ["M", M, 300, 200, "5369a64964ca8c9a11aa7556e2958ca53b6de4c9899b1633f8e7078e3c3ec3f8", 100],
  ["A", A, 64, 64, "934d64c158a1ebc17e9d2458499b99728f4e378df9e3baa1046d765249b6855e", 100],
  ["B", B, 512, 384, "b51971395330971a2b19616020fe3686fab36a348ebd9c2c78734e76863ef752", 100],
];
const RGB_HASH = "03351b7d09480b1c6b756be42e2d5ffcf7f0aea6fcb4eca199a1d62ad4889011";

const B64_DIHEDRAL = {
  original: "3b7d786b793178bb7072f2fee054e1fc80ea01a445f0fff4efc0ff80b1009200",
  rotate90: "079f80c3ff1c03e8f018ffc3841d5e8115fc30473df042efd180f8af5c800fff",
  rotate180: "6e2cd2e13c74d2112527587eb5114b56d5bfab0e10b5555eba955d2ae45538aa",
  rotate270: "52ca6ae9aa4ba942b54d556dd148f42b40a99aedeca5eae5a4d5d2054dd5a555",
  flipX: "3b7dc7b679398f4470720d2be0541e03c0fafe5b45f0000befc00c7fb1006dff",
  flipY: "6e0c2d1e2c642dee2527a7a3b511b4a9d5bf54f110b5aaa1ba95a2d5c455c755",
  flipPlus1: "079f7f3cff1efc17f01c003c841da17e15fccfb8fdf0bf30d58087505c80f000",
  flipMinus1: "52cad596aa4b76bda54daa96d1480bd440a96512eca537ba84d5adfa0dd55aaa",
};

/** The array operation of §5.1's table that each variant's hash equals (n×n, row = y). */
const TRANSFORMS: Record<
  keyof typeof B64_DIHEDRAL,
  (i: number, j: number, n: number) => [number, number]
> = {
  original: (i, j) => [i, j],
  rotate90: (i, j, n) => [j, n - 1 - i], // counter-clockwise: out[i][j] = in[j][n-1-i]
  rotate180: (i, j, n) => [n - 1 - i, n - 1 - j],
  rotate270: (i, j, n) => [n - 1 - j, i], // clockwise
  flipX: (i, j, n) => [n - 1 - i, j],
  flipY: (i, j, n) => [i, n - 1 - j],
  flipPlus1: (i, j) => [j, i],
  flipMinus1: (i, j, n) => [n - 1 - j, n - 1 - i],
};

function ones(hash: string): number {
  return hammingDistance(hash, "0".repeat(64));
}

describe("PDQ synthetic vectors (media-gaps.md §5.3a)", () => {
  for (const [name, fill, rows, cols, hash, quality] of VECTORS) {
    it(`${name} ${rows}x${cols}`, () => {
      const input = luma(rows, cols, fill);
      assert.deepEqual(pdqFromLuma(input, rows, cols), { hash, quality });
      // The same through float32 input (what the image path feeds).
      assert.deepEqual(pdqFromLuma(Float32Array.from(input), rows, cols), { hash, quality });
      assert.equal(ones(hash), 128);
    });
  }

  it("RGB 120x160 through the pixel path (float32 luma formula)", () => {
    assert.deepEqual(pdqFromPixels(rgb(120, 160), 120, 160, 3), { hash: RGB_HASH, quality: 100 });
  });

  it("RGB 120x160 with an alpha channel ignored, and from a float64 luma", () => {
    const three = rgb(120, 160);
    const four = new Uint8Array(120 * 160 * 4);
    const y = new Float64Array(120 * 160);
    for (let p = 0; p < 120 * 160; p++) {
      four.set(three.subarray(p * 3, p * 3 + 3), p * 4);
      four[p * 4 + 3] = (p * 7) % 256;
      y[p] =
        0.299 * (three[p * 3] as number) +
        0.587 * (three[p * 3 + 1] as number) +
        0.114 * (three[p * 3 + 2] as number);
    }
    assert.equal(pdqFromPixels(four, 120, 160, 4).hash, RGB_HASH);
    assert.equal(pdqFromLuma(y, 120, 160).hash, RGB_HASH);
  });

  it("a grey image's value is its luma", () => {
    const grey = Uint8Array.from(luma(200, 300, A));
    assert.equal(pdqFromPixels(grey, 200, 300, 1).hash, VECTORS[0]?.[4]);
  });

  it("below 5 rows or columns: all zeros, quality 0", () => {
    const zero = { hash: "0".repeat(64), quality: 0 };
    assert.deepEqual(pdqFromLuma(new Float32Array(40), 4, 10), zero);
    assert.deepEqual(pdqFromLuma(luma(10, 4, A), 10, 4), zero);
    assert.deepEqual(pdqFromLuma(new Float32Array(0), 0, 0), zero);
    assert.deepEqual(pdqFromPixels(new Uint8Array(3), 1, 1, 3), zero);
    assert.equal(pdqFromLuma(luma(5, 5, A), 5, 5).hash.length, 64);
  });

  it("a flat image has quality 0", () => {
    assert.equal(pdqFromLuma(new Float32Array(100 * 100).fill(128), 100, 100).quality, 0);
  });
});

describe("PDQ dihedral variants of B 64x64", () => {
  const input = luma(64, 64, B);
  const { hashes, quality } = pdqDihedralFromLuma(input, 64, 64);

  it("all eight from the one DCT", () => {
    assert.equal(quality, 100);
    assert.deepEqual(hashes, B64_DIHEDRAL);
    assert.deepEqual(Object.keys(hashes).sort(), [...PDQ_DIHEDRAL_NAMES].sort());
  });

  for (const name of PDQ_DIHEDRAL_NAMES) {
    it(`${name} is the hash of the transformed array`, () => {
      const moved = luma(64, 64, (i, j) => {
        const [si, sj] = TRANSFORMS[name](i, j, 64);
        return B(si, sj);
      });
      assert.equal(pdqFromLuma(moved, 64, 64).hash, B64_DIHEDRAL[name]);
    });
  }

  it("below 5x5 every variant is all zeros", () => {
    const small = pdqDihedralFromLuma(new Float32Array(16), 4, 4);
    assert.equal(small.quality, 0);
    for (const name of PDQ_DIHEDRAL_NAMES) assert.equal(small.hashes[name], "0".repeat(64));
  });
});

describe("PDQ hash strings", () => {
  it("Hamming distance counts differing bits", () => {
    const zero = "0".repeat(64);
    assert.equal(hammingDistance(zero, zero), 0);
    assert.equal(hammingDistance(zero, "f".repeat(64)), 256);
    assert.equal(hammingDistance(zero, `${"0".repeat(63)}1`), 1);
    assert.equal(hammingDistance(`8${"0".repeat(63)}`, `${"0".repeat(63)}7`), 4);
    assert.equal(
      hammingDistance(B64_DIHEDRAL.original, B64_DIHEDRAL.flipX),
      hammingDistance(B64_DIHEDRAL.flipX, B64_DIHEDRAL.original),
    );
  });

  it("only 64 lowercase hex digits are PDQ hashes", () => {
    assert.equal(isPdqHash(B64_DIHEDRAL.original), true);
    assert.equal(isPdqHash(B64_DIHEDRAL.original.toUpperCase()), false);
    assert.equal(isPdqHash(B64_DIHEDRAL.original.slice(1)), false);
    assert.equal(isPdqHash(`${B64_DIHEDRAL.original}0`), false);
    assert.equal(isPdqHash(`${B64_DIHEDRAL.original.slice(1)}g`), false);
    assert.equal(isPdqHash(`${B64_DIHEDRAL.original}\n`), false);
    assert.throws(() => hammingDistance("00", B64_DIHEDRAL.original), RangeError);
  });

  it("HMA's thresholds", () => {
    assert.equal(PDQ_MATCH_THRESHOLD, 31);
    assert.equal(PDQ_QUALITY_THRESHOLD, 50);
  });
});
