/**
 * The PDQ hash of an image file, decoded the way HMA decodes it
 * (media-gaps.md §5.2: `pdqhash` over PIL): full resolution (no pre-shrink),
 * no EXIF rotation, alpha dropped, the first frame of an animation. Quality
 * below 50 stores no hash (HMA's `QUALITY_THRESHOLD`).
 *
 * Design notes:
 * - Only formats named by their magic bytes (`sniffImageFormat`, the same
 *   gate as thumbnails) reach sharp, which is loaded lazily on first use.
 * - Decompression bombs: the header's width × height is checked against
 *   `maxImagePixels` before decoding, and sharp's `limitInputPixels` guards
 *   the decode itself.
 * - Memory per hash: sharp decodes to one 8-bit buffer of width × height ×
 *   channels (3, or 1 for a grey image), so at most 3 × max_image_pixels
 *   bytes, plus the blur's few rows (pdq-downsample.ts: about
 *   (2 × ceil(height/128) + 6) × width × 4 bytes). The reference's two
 *   full-size float buffers (8 bytes a pixel) are never made.
 * - The JavaScript part yields to the event loop every ~2^20 pixels, so a
 *   large image does not stall other requests for its whole hash.
 * - Never throws for bad input: every failure is `{ hash: null, reason }`.
 */
import { open } from "node:fs/promises";
import { loadSharp } from "../thumbnails/load-sharp.js";
import { sniffImageFormat } from "../thumbnails/thumbnailer.js";
import { PDQ_MIN_DIMENSION, PDQ_QUALITY_THRESHOLD, PdqPixelHasher } from "./pdq.js";

/** A hash with its quality, or no hash and why (`quality` when one was computed). */
export type PdqImageResult =
  | { hash: string; quality: number }
  | { hash: null; quality: number | null; reason: string };

/** `maxImagePixels`: the config's `max_image_pixels`; larger images are not decoded. */
export interface PdqImageOptions {
  readonly maxImagePixels: number;
}

const MAGIC_BYTES = 64;
const YIELD_EVERY_PIXELS = 1 << 20;

/** The PDQ hash of an image given as bytes or a file path; never throws for bad input. */
export async function hashImage(
  input: Buffer | string,
  options: PdqImageOptions,
): Promise<PdqImageResult> {
  let head: Uint8Array;
  try {
    head = typeof input === "string" ? await readHead(input) : input.subarray(0, MAGIC_BYTES);
  } catch (error) {
    return noHash(`unreadable: ${describe(error)}`);
  }
  if (!sniffImageFormat(head)) return noHash("not an image format mxcd hashes");
  const sharp = await loadSharp();
  let width: number;
  let height: number;
  let grey: boolean;
  try {
    // The header only (first frame of an animation, as decoded below).
    const meta = await sharp(input, { limitInputPixels: false }).metadata();
    width = meta.width ?? 0;
    height = meta.pageHeight ?? meta.height ?? 0;
    grey = meta.channels !== undefined && meta.channels <= 2;
  } catch (error) {
    return noHash(`undecodable header: ${describe(error)}`);
  }
  if (width * height > options.maxImagePixels) {
    return noHash(`too large: ${width}x${height} is over max_image_pixels`);
  }
  if (width < PDQ_MIN_DIMENSION || height < PDQ_MIN_DIMENSION) {
    return { hash: null, quality: 0, reason: `too small: ${width}x${height} (PDQ needs 5x5)` };
  }
  let decoded: { data: Buffer; info: { width: number; height: number; channels: number } };
  try {
    decoded = await sharp(input, {
      limitInputPixels: options.maxImagePixels,
      sequentialRead: true,
      pages: 1,
      page: 0,
    })
      .removeAlpha()
      .toColourspace(grey ? "b-w" : "srgb")
      .raw({ depth: "uchar" })
      .toBuffer({ resolveWithObject: true });
  } catch (error) {
    if (/pixel limit/i.test(String(error))) return noHash("too large: over max_image_pixels");
    return noHash(`undecodable: ${describe(error)}`);
  }
  const { data, info } = decoded;
  if (
    (info.channels !== 1 && info.channels !== 3) ||
    data.length !== info.width * info.height * info.channels
  ) {
    return noHash(`unexpected decode: ${info.width}x${info.height}x${info.channels}`);
  }
  const result = await hashPixels(data, info.height, info.width, info.channels);
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

async function readHead(path: string): Promise<Uint8Array> {
  const file = await open(path, "r");
  try {
    const head = Buffer.alloc(MAGIC_BYTES);
    const { bytesRead } = await file.read(head, 0, MAGIC_BYTES, 0);
    return head.subarray(0, bytesRead);
  } finally {
    await file.close();
  }
}

function noHash(reason: string): PdqImageResult {
  return { hash: null, quality: null, reason };
}

/** The first line of an error's message, short enough for a log field. */
function describe(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return (message.split("\n")[0] ?? "").slice(0, 200);
}
