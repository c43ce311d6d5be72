/**
 * Decoding an image for PDQ the way HMA does (media-gaps.md §5.2: `pdqhash`
 * over PIL): full resolution (unless the caller sets a `minSide` floor, the
 * config's `pdq_decode_min_side`), no EXIF rotation, alpha dropped (not
 * composited), the first frame or page only, and the stored sample values as
 * they are — no ICC colour management (PIL applies none; libvips would
 * otherwise convert a tagged image, e.g. Display P3, to sRGB).
 *
 * Only formats named by their magic bytes (`sniffImageFormat`, the gate in
 * front of the thumbnailer too) reach sharp, which is loaded on first use.
 * Bombs: the header's width × height is checked against `maxImagePixels`
 * before decoding, and sharp's `limitInputPixels` guards the decode itself.
 * Never throws for bad input: a failure is `{ reason }`.
 */
import { open } from "node:fs/promises";
import { loadSharp } from "../thumbnails/load-sharp.js";
import { sniffImageFormat } from "../thumbnails/thumbnailer.js";
import { PDQ_MIN_DIMENSION } from "./pdq.js";

/** 8-bit interleaved pixels: 1 channel (grey) or 3 (RGB). */
export interface PdqPixels {
  readonly data: Buffer;
  readonly width: number;
  readonly height: number;
  readonly channels: 1 | 3;
}

/** Why there are no pixels; `tooSmall` when the image is under 5×5 (PDQ's quality 0). */
export interface PdqDecodeFailure {
  readonly reason: string;
  readonly tooSmall?: true;
}

const MAGIC_BYTES = 64;

/**
 * `minSide`: when set, a baseline JPEG or a WebP is decoded at the smallest
 * of 1/2, 1/4, 1/8 scale (the decoder's own shrink-on-load) whose shorter side
 * is still at least `minSide`; other formats (progressive JPEG included) and
 * smaller images stay at full resolution.
 * Unset (the default): full resolution, as HMA. The header bound
 * (`maxImagePixels`) is on the full size either way.
 */
export interface PdqDecodeOptions {
  readonly minSide?: number | null;
}

/** The pixels PDQ hashes, or why there are none. */
export async function decodeForPdq(
  input: Buffer | string,
  maxImagePixels: number,
  options: PdqDecodeOptions = {},
): Promise<PdqPixels | PdqDecodeFailure> {
  let head: Uint8Array;
  try {
    head = typeof input === "string" ? await readHead(input) : input.subarray(0, MAGIC_BYTES);
  } catch (error) {
    return { reason: `unreadable: ${describe(error)}` };
  }
  if (!sniffImageFormat(head)) return { reason: "not an image format mxcd hashes" };
  const sharp = await loadSharp();
  let width: number;
  let height: number;
  let grey: boolean;
  let format: string | undefined;
  try {
    // The header only (the first frame's size for an animation).
    const meta = await sharp(input, { limitInputPixels: false }).metadata();
    width = meta.width ?? 0;
    height = meta.pageHeight ?? meta.height ?? 0;
    grey = meta.channels !== undefined && meta.channels <= 2;
    // A progressive JPEG is entropy-decoded in full whatever the scale:
    // measured, its shrink-on-load saves nothing and can cost more
    // (bench/README.md "PDQ decode trade-off"), so it stays exact.
    format = meta.format === "jpeg" && meta.isProgressive ? "jpeg-progressive" : meta.format;
  } catch (error) {
    return { reason: `undecodable header: ${describe(error)}` };
  }
  if (width * height > maxImagePixels) {
    return { reason: `too large: ${width}x${height} is over max_image_pixels` };
  }
  if (width < PDQ_MIN_DIMENSION || height < PDQ_MIN_DIMENSION) {
    return { reason: `too small: ${width}x${height} (PDQ needs 5x5)`, tooSmall: true };
  }
  const shrink = shrinkOnLoad(format, width, height, options.minSide);
  try {
    let pipeline = sharp(input, {
      limitInputPixels: maxImagePixels,
      sequentialRead: true,
      pages: 1,
      page: 0,
    });
    // Exactly the decoder's scaled size, so the resize is the shrink-on-load
    // alone (libjpeg's scaled IDCT, libwebp's scaled decode), no resampling.
    if (shrink > 1) {
      pipeline = pipeline.resize(Math.ceil(width / shrink), Math.ceil(height / shrink), {
        fit: "fill",
        kernel: "nearest",
      });
    }
    const { data, info } = await pipeline
      .keepIccProfile()
      .removeAlpha()
      .toColourspace(grey ? "b-w" : "srgb")
      .raw({ depth: "uchar" })
      .toBuffer({ resolveWithObject: true });
    const channels = info.channels;
    if ((channels !== 1 && channels !== 3) || data.length !== info.width * info.height * channels) {
      return { reason: `unexpected decode: ${info.width}x${info.height}x${channels}` };
    }
    return { data, width: info.width, height: info.height, channels };
  } catch (error) {
    if (/pixel limit/i.test(String(error))) return { reason: "too large: over max_image_pixels" };
    return { reason: `undecodable: ${describe(error)}` };
  }
}

/** 1, 2, 4 or 8: the largest decoder shrink that keeps the shorter side >= minSide. */
export function shrinkOnLoad(
  format: string | undefined,
  width: number,
  height: number,
  minSide: number | null | undefined,
): number {
  if (!minSide || (format !== "jpeg" && format !== "webp")) return 1;
  let shrink = 1;
  while (shrink < 8 && Math.floor(Math.min(width, height) / (shrink * 2)) >= minSide) shrink *= 2;
  return shrink;
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

/** The first line of an error's message, short enough for a log field. */
function describe(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return (message.split("\n")[0] ?? "").slice(0, 200);
}
