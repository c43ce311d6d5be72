/**
 * PDQ, Meta's 256-bit perceptual image hash, written from the algorithm
 * description in media-gaps.md §5.1 (reference: ThreatExchange
 * `pdq/cpp/hashing/pdqhashing.cpp`), bit-exact with the reference's float32
 * arithmetic on the synthetic vectors of §5.3.
 *
 * Pipeline: luma (0.299 R + 0.587 G + 0.114 B) → two Jarosz box-filter passes
 * → 64×64 point sample (pdq-downsample.ts) → quality metric → 16×16 corner of
 * the 2-D DCT (the DC row skipped) → bit k = 16i + j is set iff
 * DCT[i][j] > the 128th smallest of the 256 values → 64 hex digits, the
 * big-endian 256-bit integer whose bit k is set.
 *
 * The eight dihedral variants (rotations and flips) come from the one DCT by
 * sign flips and transposes, as the reference's `dct16OriginalTo*`.
 */
import { PdqDownsampler } from "./pdq-downsample.js";

/** Distance at or below which two PDQ hashes match (HMA's PDQ_CONFIDENT_MATCH_THRESHOLD). */
export const PDQ_MATCH_THRESHOLD = 31;
/** Quality below which HMA stores no hash (`PdqSignal.QUALITY_THRESHOLD`). */
export const PDQ_QUALITY_THRESHOLD = 50;
/** Images with fewer rows or columns hash to all zeros, quality 0 (C++ `MIN_HASHABLE_DIM`). */
export const PDQ_MIN_DIMENSION = 5;

/** A PDQ hash (64 lowercase hex digits) and its quality (0–100). */
export interface PdqResult {
  readonly hash: string;
  readonly quality: number;
}

/** The names of the eight dihedral variants, in the reference's order (flags 0x01..0x80). */
export const PDQ_DIHEDRAL_NAMES = [
  "original",
  "rotate90",
  "rotate180",
  "rotate270",
  "flipX",
  "flipY",
  "flipPlus1",
  "flipMinus1",
] as const;
export type PdqDihedralName = (typeof PDQ_DIHEDRAL_NAMES)[number];

/** The hashes of the eight dihedral transforms of one image, and its quality. */
export interface PdqDihedralResult {
  readonly hashes: Readonly<Record<PdqDihedralName, string>>;
  readonly quality: number;
}

const ZERO_HASH = "0".repeat(64);
const fround = Math.fround;
/** coefficient × v for every 8-bit v, as float32: the reference's float products, looked up. */
const lumaTable = (coefficient: number) =>
  Float32Array.from({ length: 256 }, (_, v) => fround(coefficient) * v);
const LUMA_R = lumaTable(0.299);
const LUMA_G = lumaTable(0.587);
const LUMA_B = lumaTable(0.114);

/** The PDQ hash of a `rows`×`cols` row-major luma image (values 0–255; float32 is used). */
export function pdqFromLuma(
  luma: Float32Array | Float64Array,
  rows: number,
  cols: number,
): PdqResult {
  const dct = dctFromLuma(luma, rows, cols);
  if (!dct) return { hash: ZERO_HASH, quality: 0 };
  return { hash: hashFromDct(dct.coefficients), quality: dct.quality };
}

/** The eight dihedral hashes of a luma image (all zeros below 5×5). */
export function pdqDihedralFromLuma(
  luma: Float32Array | Float64Array,
  rows: number,
  cols: number,
): PdqDihedralResult {
  const dct = dctFromLuma(luma, rows, cols);
  if (!dct) {
    const hashes = Object.fromEntries(PDQ_DIHEDRAL_NAMES.map((name) => [name, ZERO_HASH]));
    return { hashes: hashes as Record<PdqDihedralName, string>, quality: 0 };
  }
  return { hashes: dihedralHashes(dct.coefficients), quality: dct.quality };
}

/**
 * A streaming hasher for decoded pixels: `pushRow` each row of
 * `cols × channels` 8-bit samples (1–2 channels: grey, whose value is the
 * luma; 3–4: RGB, luma by the reference's float32 formula; a 2nd or 4th
 * channel, alpha, is ignored), then `finish`. Memory is a few rows.
 */
export class PdqPixelHasher {
  readonly #cols: number;
  readonly #channels: number;
  readonly #downsampler: PdqDownsampler | undefined;

  constructor(rows: number, cols: number, channels: number) {
    if (!(channels >= 1 && channels <= 4)) throw new RangeError("PdqPixelHasher: 1 to 4 channels");
    this.#cols = cols;
    this.#channels = channels;
    const hashable = rows >= PDQ_MIN_DIMENSION && cols >= PDQ_MIN_DIMENSION;
    this.#downsampler = hashable ? new PdqDownsampler(rows, cols) : undefined;
  }

  /** Feeds the next row: `cols × channels` samples from `offset` in `pixels`. */
  pushRow(pixels: Uint8Array, offset: number): void {
    const downsampler = this.#downsampler;
    if (!downsampler) return;
    // Luma goes straight into the downsampler's batch (no row copy).
    const luma = downsampler.rowBuffer();
    if (this.#channels < 3) greyRow(pixels, offset, luma, this.#cols, this.#channels);
    else rgbRow(pixels, offset, luma, this.#cols, this.#channels);
    downsampler.commitRow();
  }

  /** The hash, once all `rows` rows are in (all zeros, quality 0, below 5×5). */
  finish(): PdqResult {
    if (!this.#downsampler) return { hash: ZERO_HASH, quality: 0 };
    const image = this.#downsampler.finish();
    return { hash: hashFromDct(dct64To16(image)), quality: qualityOf(image) };
  }
}

/** A grey row's luma is its value (a second channel, alpha, is skipped). */
function greyRow(
  pixels: Uint8Array,
  offset: number,
  luma: Float32Array,
  cols: number,
  stride: number,
): void {
  for (let j = 0, at = offset; j < cols; j++, at += stride) luma[j] = pixels[at] as number;
}

/**
 * An RGB(A) row's luma, float32 as the reference: (R·0.299 + G·0.587) + B·0.114,
 * each product looked up, the sum rounded after each add (the store rounds the
 * last). Kept to one small loop so V8 compiles it for one shape.
 */
function rgbRow(
  pixels: Uint8Array,
  offset: number,
  luma: Float32Array,
  cols: number,
  stride: number,
): void {
  const lr = LUMA_R;
  const lg = LUMA_G;
  const lb = LUMA_B;
  for (let j = 0, at = offset; j < cols; j++, at += stride) {
    const r = lr[pixels[at] as number] as number;
    const g = lg[pixels[at + 1] as number] as number;
    luma[j] = fround(r + g) + (lb[pixels[at + 2] as number] as number);
  }
}

/** The PDQ hash of 8-bit interleaved pixels (see PdqPixelHasher for channels). */
export function pdqFromPixels(
  pixels: Uint8Array,
  rows: number,
  cols: number,
  channels: number,
): PdqResult {
  const hasher = new PdqPixelHasher(rows, cols, channels);
  for (let i = 0; i < rows; i++) hasher.pushRow(pixels, i * cols * channels);
  return hasher.finish();
}

/** True for a PDQ hash as HMA writes them: exactly 64 lowercase hex digits. */
export function isPdqHash(s: string): boolean {
  return typeof s === "string" && /^[0-9a-f]{64}$/.test(s);
}

const POPCOUNT4 = [0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4];

/** The number of differing bits of two PDQ hashes; throws RangeError on a malformed hash. */
export function hammingDistance(a: string, b: string): number {
  if (!isPdqHash(a) || !isPdqHash(b)) throw new RangeError("not a PDQ hash (64 lowercase hex)");
  let distance = 0;
  for (let k = 0; k < 64; k++) {
    distance += POPCOUNT4[
      Number.parseInt(a[k] as string, 16) ^ Number.parseInt(b[k] as string, 16)
    ] as number;
  }
  return distance;
}

// --- internals -------------------------------------------------------------

function dctFromLuma(
  luma: Float32Array | Float64Array,
  rows: number,
  cols: number,
): { coefficients: Float32Array; quality: number } | undefined {
  if (!Number.isInteger(rows) || !Number.isInteger(cols) || rows < 0 || cols < 0) {
    throw new RangeError("rows and cols must be non-negative integers");
  }
  if (luma.length < rows * cols) throw new RangeError("luma is shorter than rows × cols");
  if (rows < PDQ_MIN_DIMENSION || cols < PDQ_MIN_DIMENSION) return undefined;
  const downsampler = new PdqDownsampler(rows, cols);
  const row = new Float32Array(cols);
  for (let i = 0; i < rows; i++) {
    row.set(luma.subarray(i * cols, (i + 1) * cols));
    downsampler.pushRow(row);
  }
  const image = downsampler.finish();
  return { coefficients: dct64To16(image), quality: qualityOf(image) };
}

/**
 * The reference's image-domain quality: the sum over neighbouring pairs of
 * the 64×64 image of |trunc((u − v) × 100 / 255)|, integer-divided by 90,
 * capped at 100 (float32 arithmetic, as C++).
 */
function qualityOf(image: Float32Array): number {
  let sum = 0;
  const step = (u: number, v: number) =>
    Math.abs(Math.trunc(fround(fround(fround(u - v) * 100) / 255)));
  for (let i = 0; i < 63; i++) {
    for (let j = 0; j < 64; j++)
      sum += step(image[i * 64 + j] as number, image[(i + 1) * 64 + j] as number);
  }
  for (let i = 0; i < 64; i++) {
    for (let j = 0; j < 63; j++)
      sum += step(image[i * 64 + j] as number, image[i * 64 + j + 1] as number);
  }
  return Math.min(100, Math.floor(sum / 90));
}

/** D[i][j] = sqrt(2/64) × cos(π/128 × (i+1) × (2j+1)), i < 16, j < 64, stored as float32. */
const DCT_MATRIX = (() => {
  const d = new Float32Array(16 * 64);
  const scale = Math.sqrt(2 / 64);
  for (let i = 0; i < 16; i++) {
    for (let j = 0; j < 64; j++)
      d[i * 64 + j] = scale * Math.cos((Math.PI / 2 / 64) * (i + 1) * (2 * j + 1));
  }
  return d;
})();

/** B = D · A · Dᵀ (16×16), accumulating in float32 in the reference's order. */
function dct64To16(a: Float32Array): Float32Array {
  const d = DCT_MATRIX;
  const t = new Float32Array(16 * 64);
  for (let i = 0; i < 16; i++) {
    for (let j = 0; j < 64; j++) {
      let sum = 0;
      for (let k = 0; k < 64; k++)
        sum = fround(sum + fround((d[i * 64 + k] as number) * (a[k * 64 + j] as number)));
      t[i * 64 + j] = sum;
    }
  }
  const b = new Float32Array(16 * 16);
  for (let i = 0; i < 16; i++) {
    for (let j = 0; j < 16; j++) {
      let sum = 0;
      for (let k = 0; k < 64; k++)
        sum = fround(sum + fround((t[i * 64 + k] as number) * (d[j * 64 + k] as number)));
      b[i * 16 + j] = sum;
    }
  }
  return b;
}

/** Bits above the median (the 128th smallest value, as Torben's method returns), as hex. */
function hashFromDct(b: Float32Array): string {
  const median = Float32Array.from(b).sort()[127] as number;
  let hex = "";
  for (let i = 15; i >= 0; i--) {
    let word = 0;
    for (let j = 0; j < 16; j++) if ((b[i * 16 + j] as number) > median) word |= 1 << j;
    hex += word.toString(16).padStart(4, "0");
  }
  return hex;
}

/**
 * The eight variants from one DCT (media-gaps.md §5.1 table): each is
 * `sign(i, j) × B[i][j]` written at [i][j] or, for the transposing ones, at
 * [j][i]; then thresholded at its own median.
 */
function dihedralHashes(b: Float32Array): Record<PdqDihedralName, string> {
  const odd = (n: number) => (n & 1) === 1;
  const variant = (transpose: boolean, sign: (i: number, j: number) => boolean) => {
    const out = new Float32Array(256);
    for (let i = 0; i < 16; i++) {
      for (let j = 0; j < 16; j++) {
        const v = b[i * 16 + j] as number;
        out[transpose ? j * 16 + i : i * 16 + j] = sign(i, j) ? v : -v;
      }
    }
    return hashFromDct(out);
  };
  return {
    original: hashFromDct(b),
    rotate90: variant(true, (_i, j) => odd(j)),
    rotate180: variant(false, (i, j) => !odd(i + j)),
    rotate270: variant(true, (i) => odd(i)),
    flipX: variant(false, (i) => odd(i)),
    flipY: variant(false, (_i, j) => odd(j)),
    flipPlus1: variant(true, () => true),
    flipMinus1: variant(true, (i, j) => !odd(i + j)),
  };
}
