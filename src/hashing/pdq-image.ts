/**
 * The PDQ hash of an image file, decoded the way HMA decodes it
 * (pdq-decode.ts: full resolution, no EXIF rotation, alpha dropped, first
 * frame, no colour management). Quality below 50 stores no hash (HMA's
 * `QUALITY_THRESHOLD`). `decodeMinSide` opts into a cheaper, bounded
 * shrink-on-load decode (docs/trust-and-safety.md "PDQ decode cost").
 *
 * Memory per hash (N = max_image_pixels): sharp decodes to one 8-bit buffer
 * of width × height × channels (3, or 1 for a grey image), at most 3N bytes;
 * the blur then needs only a few rows (pdq-downsample.ts: about
 * (ceil(height/128) + 13) × width × 4 bytes, under 0.5N for an image at least
 * 128 pixels high, about 11N at worst for a 5-pixel strip). libvips' own decoder state
 * comes on top (small for sequential JPEG/PNG reads).
 *
 * The JavaScript part yields to the event loop every ~2^20 pixels, so a large
 * image does not hold up other requests for its whole hash. Callers bound
 * how many hashes run at once (each holds its decoded pixels).
 *
 * Never throws for bad input: every failure is `{ hash: null, reason }`.
 */

import { PDQ_QUALITY_THRESHOLD, PdqPixelHasher } from "./pdq.js";
import { decodeForPdq } from "./pdq-decode.js";

/** A hash with its quality, or no hash and why (`quality` when one was computed). */
export type PdqImageResult =
  | { hash: string; quality: number }
  | { hash: null; quality: number | null; reason: string };

/** `maxImagePixels`: the config's `max_image_pixels`; larger images are not decoded. */
export interface PdqImageOptions {
  readonly maxImagePixels: number;
  /** See `PdqDecodeOptions.minSide` (pdq-decode.ts); unset: full resolution, as HMA. */
  readonly decodeMinSide?: number | null;
}

const YIELD_EVERY_PIXELS = 1 << 20;

/** The PDQ hash of an image given as bytes or a file path; never throws for bad input. */
export async function hashImage(
  input: Buffer | string,
  options: PdqImageOptions,
): Promise<PdqImageResult> {
  const pixels = await decodeForPdq(input, options.maxImagePixels, {
    minSide: options.decodeMinSide,
  });
  if ("reason" in pixels) {
    return { hash: null, quality: pixels.tooSmall ? 0 : null, reason: pixels.reason };
  }
  const result = await hashPixels(pixels.data, pixels.height, pixels.width, pixels.channels);
  if (result.quality < PDQ_QUALITY_THRESHOLD) {
    return { hash: null, quality: result.quality, reason: "low quality" };
  }
  return result;
}

/** Feeds decoded rows to the hasher, yielding to the event loop now and then. */
async function hashPixels(
  data: Uint8Array,
  rows: number,
  cols: number,
  channels: number,
): Promise<{ hash: string; quality: number }> {
  const hasher = new PdqPixelHasher(rows, cols, channels);
  const rowsPerSlice = Math.max(1, Math.floor(YIELD_EVERY_PIXELS / cols));
  for (let i = 0; i < rows; i++) {
    hasher.pushRow(data, i * cols * channels);
    if ((i + 1) % rowsPerSlice === 0) await new Promise((resolve) => setImmediate(resolve));
  }
  return hasher.finish();
}
