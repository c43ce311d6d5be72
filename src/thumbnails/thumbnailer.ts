/**
 * Thumbnail image work: reading image headers, making thumbnails with sharp,
 * choosing among stored thumbnails and planning which to pre-generate. No
 * HTTP and no storage here.
 *
 * Design notes:
 * - Only JPEG, PNG, GIF, WebP, TIFF and AVIF are ever handed to sharp, and
 *   only after their magic bytes say so: libvips would otherwise also parse
 *   SVG (librsvg) and other formats, widening the attack surface (Synapse
 *   restricts Pillow the same way, to jpeg/png/webp/gif).
 * - Decompression bombs: the header's width × height is checked against
 *   `maxImagePixels` before anything is decoded, and sharp's
 *   `limitInputPixels` is set as a second guard. Animations are decoded
 *   whole only when width × height × frames fits the same budget and the
 *   frame count is within `maxFrames` (a 2×2 GIF of 60,000 frames is few
 *   pixels but a minute of per-frame work); otherwise the thumbnail is a
 *   still of the first frame.
 * - A time budget per thumbnail (`timeoutSeconds`, sharp's `timeout`): an
 *   animated render that runs over it is redone as a still of the first
 *   frame (which gets the budget afresh); a still that runs over it is
 *   refused with ThumbnailTimeoutError.
 * - Memory: `withSlot` is the one limit for loading a source and rendering
 *   it, so the caller reads the original only once it holds a slot and at
 *   most `concurrency` originals are in memory (see ThumbnailService).
 * - Never upscale (Matrix spec, "Thumbnails"): a source no larger than the
 *   request in both dimensions is answered with the original content when
 *   that content is a valid thumbnail (`servesOriginal`).
 * - Output is deterministic (fixed geometry and encoder settings), so the
 *   client and federation thumbnails of the same request are byte-identical.
 */
import type sharp from "sharp";
import { Semaphore } from "../util/semaphore.js";
import { renderBlurPreview } from "./blur-preview.js";
import { loadSharp } from "./load-sharp.js";

/** `crop` fills the requested box; `scale` fits inside it (Matrix spec §thumbnails). */
export type ThumbnailMethod = "crop" | "scale";

/** One size in `thumbnail_sizes`, or the size part of a request. */
export interface ThumbnailSize {
  readonly width: number;
  readonly height: number;
  readonly method: ThumbnailMethod;
}

/** A thumbnail request; `animated` is the spec's `animated` query parameter. */
export interface ThumbnailRequest extends ThumbnailSize {
  readonly animated: boolean;
}

/** The image formats mxcd thumbnails. */
export type ImageFormat = "jpeg" | "png" | "gif" | "webp" | "tiff" | "avif";

/** What an image's header says (nothing is decoded to learn it). */
export interface ImageInfo {
  readonly format: ImageFormat;
  /** The source's content type, from its bytes (not from the upload's claim). */
  readonly contentType: string;
  /** Width and height as displayed, i.e. after the EXIF orientation. */
  readonly width: number;
  readonly height: number;
  /** EXIF orientation, 1 (upright) when absent. */
  readonly orientation: number;
  /** Frames in the file; 1 for a still. */
  readonly pages: number;
  /** True for a GIF or WebP with more than one frame. */
  readonly animated: boolean;
  readonly hasAlpha: boolean;
}

/** Why an animated request was answered with a still although the source animates. */
export type StillFallback = "budget" | "timeout";

/** New thumbnail bytes; `fallback` says why an animation became a still. */
export interface RenderedThumbnail {
  readonly kind: "image";
  readonly bytes: Buffer;
  readonly contentType: string;
  readonly width: number;
  readonly height: number;
  readonly fallback?: StillFallback;
}

/** `generate`'s answer: new thumbnail bytes, or "serve the original content". */
export type ThumbnailResult = RenderedThumbnail | { readonly kind: "original" };

/** A thumbnail already stored (a row of the thumbnails tables). */
export interface StoredThumbnail {
  readonly width: number;
  readonly height: number;
  readonly method: ThumbnailMethod;
  readonly contentType: string;
  readonly length: number;
}

/** One thumbnail to pre-generate: pass `request` to `generate`; the rest is its outcome. */
export interface PlannedThumbnail {
  readonly request: ThumbnailRequest;
  readonly width: number;
  readonly height: number;
  readonly method: ThumbnailMethod;
  readonly contentType: string;
}

/** How a source becomes a thumbnail: resize the whole image, then keep one region. */
export interface ThumbnailGeometry {
  readonly resizeWidth: number;
  readonly resizeHeight: number;
  readonly left: number;
  readonly top: number;
  readonly width: number;
  readonly height: number;
}

/** Thrown when the input is not an image mxcd can thumbnail (garbage, truncated, SVG, ...). */
export class NotAnImageError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "NotAnImageError";
  }
}

/** Thrown, before any decoding, when an image has more pixels than `max_image_pixels`. */
export class ImageTooLargeError extends Error {
  constructor(
    readonly width: number,
    readonly height: number,
    readonly maxPixels: number,
  ) {
    super(`image of ${width}x${height} pixels is larger than the limit of ${maxPixels} pixels`);
    this.name = "ImageTooLargeError";
  }
}

/** Thrown when even a still thumbnail could not be made within the time budget. */
export class ThumbnailTimeoutError extends Error {
  constructor(readonly seconds: number) {
    super(`the thumbnail took longer than ${seconds} s`);
    this.name = "ThumbnailTimeoutError";
  }
}

/** Content type of animated thumbnails (the spec prefers WebP; so does Synapse). */
export const ANIMATED_THUMBNAIL_TYPE = "image/webp";

const CONTENT_TYPES: { readonly [F in ImageFormat]: string } = {
  jpeg: "image/jpeg",
  png: "image/png",
  gif: "image/gif",
  webp: "image/webp",
  tiff: "image/tiff",
  avif: "image/avif",
};

// The thumbnail content types the spec allows; only these originals can be
// served as a thumbnail as they are.
const SERVABLE_AS_THUMBNAIL: ReadonlySet<ImageFormat> = new Set(["jpeg", "png", "gif", "webp"]);

const JPEG_QUALITY = 80; // Synapse's setting
const WEBP_QUALITY = 80;

/**
 * The image format named by a buffer's magic bytes, or undefined. The only
 * gate in front of sharp: anything it does not name is never parsed.
 */
export function sniffImageFormat(bytes: Uint8Array): ImageFormat | undefined {
  const ascii = (start: number, end: number) =>
    Buffer.from(bytes.subarray(start, end)).toString("latin1");
  if (bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) return "jpeg";
  if (ascii(0, 8) === "\x89PNG\r\n\x1a\n") return "png";
  if (ascii(0, 6) === "GIF87a" || ascii(0, 6) === "GIF89a") return "gif";
  if (ascii(0, 4) === "RIFF" && ascii(8, 12) === "WEBP") return "webp";
  if (ascii(0, 4) === "II*\0" || ascii(0, 4) === "MM\0*") return "tiff";
  if (ascii(4, 8) === "ftyp") {
    // ISO-BMFF: the major brand at 8, then the compatible brands from 16.
    const boxEnd = Math.min(Buffer.from(bytes.subarray(0, 4)).readUInt32BE(0), bytes.length, 64);
    for (let at = 8; at + 4 <= boxEnd; at += 4) {
      if (at === 12) continue; // minor version, not a brand
      const brand = ascii(at, at + 4);
      if (brand === "avif" || brand === "avis") return "avif";
    }
  }
  return undefined;
}

/**
 * True when the original content is the right answer to `request`: the
 * source is no larger than the request in both dimensions (the spec: never
 * upscale, return the original), its type is one the spec allows for
 * thumbnails, and it would not hand an animation to a client that asked for
 * none (`animated=false` MUST NOT return an animated image).
 */
export function servesOriginal(info: ImageInfo, request: ThumbnailRequest): boolean {
  return (
    info.width <= request.width &&
    info.height <= request.height &&
    SERVABLE_AS_THUMBNAIL.has(info.format) &&
    !(info.animated && !request.animated)
  );
}

/**
 * The resize-then-extract steps for `request` on a source of the given
 * (displayed) size; never enlarges. A source that fits in the request is
 * kept at its own size. `scale` fits inside the box keeping the aspect
 * ratio; `crop` covers the box and keeps its centre, or, when the source is
 * smaller than the box in one dimension, cuts the box's aspect ratio out of
 * the source's centre without resizing. Integer maths as in Synapse's
 * Thumbnailer.aspect/crop.
 */
export function thumbnailGeometry(
  source: { readonly width: number; readonly height: number },
  request: ThumbnailSize,
): ThumbnailGeometry {
  const { width: sw, height: sh } = source;
  const { width: rw, height: rh } = request;
  const keep = (width: number, height: number, left = 0, top = 0) => ({
    left,
    top,
    width,
    height,
  });
  if (sw <= rw && sh <= rh) return { resizeWidth: sw, resizeHeight: sh, ...keep(sw, sh) };
  if (request.method === "scale") {
    const [w, h] =
      rw * sh < rh * sw
        ? [rw, Math.max(Math.floor((rw * sh) / sw), 1)]
        : [Math.max(Math.floor((rh * sw) / sh), 1), rh];
    return { resizeWidth: w, resizeHeight: h, ...keep(w, h) };
  }
  if (sw >= rw && sh >= rh) {
    if (rw * sh > rh * sw) {
      const scaledHeight = Math.floor((rw * sh) / sw);
      const top = Math.floor((scaledHeight - rh) / 2);
      return { resizeWidth: rw, resizeHeight: scaledHeight, ...keep(rw, rh, 0, top) };
    }
    const scaledWidth = Math.floor((rh * sw) / sh);
    const left = Math.floor((scaledWidth - rw) / 2);
    return { resizeWidth: scaledWidth, resizeHeight: rh, ...keep(rw, rh, left, 0) };
  }
  // Smaller than the box in one dimension: crop the box's aspect ratio out of
  // the source at full resolution instead of enlarging it.
  const [w, h] =
    sw * rh > sh * rw
      ? [Math.max(Math.round((sh * rw) / rh), 1), sh]
      : [sw, Math.max(Math.round((sw * rh) / rw), 1)];
  return {
    resizeWidth: sw,
    resizeHeight: sh,
    ...keep(w, h, Math.floor((sw - w) / 2), Math.floor((sh - h) / 2)),
  };
}

/**
 * Content type of a still thumbnail of `info`. Follows Synapse's
 * THUMBNAIL_SUPPORTED_MEDIA_FORMAT_MAP (jpeg → jpeg, png → png, gif → png
 * "because it can have transparency") except that WebP, TIFF and AVIF give
 * PNG when they have an alpha channel and JPEG otherwise (Synapse makes every
 * WebP a JPEG, which blackens transparent stickers).
 */
function stillContentType(info: ImageInfo): string {
  if (info.format === "jpeg") return "image/jpeg";
  if (info.format === "png" || info.format === "gif") return "image/png";
  return info.hasAlpha ? "image/png" : "image/jpeg";
}

/** Whether every frame of `info` may be decoded within the pixel and frame budgets. */
function canAnimate(info: ImageInfo, maxImagePixels: number, maxFrames: number): boolean {
  // A rotated animation is too rare to be worth a multi-page rotation path.
  return (
    info.animated &&
    info.orientation === 1 &&
    withinAnimationBudget(info, maxImagePixels, maxFrames)
  );
}

function withinAnimationBudget(info: ImageInfo, maxImagePixels: number, maxFrames: number) {
  return info.pages <= maxFrames && info.width * info.height * info.pages <= maxImagePixels;
}

function exceedsLimit(info: ImageInfo, maxImagePixels: number): boolean {
  return info.width * info.height > maxImagePixels;
}

function assertSize(size: ThumbnailSize): void {
  for (const n of [size.width, size.height]) {
    if (!Number.isSafeInteger(n) || n < 1) {
      throw new RangeError(`thumbnail dimensions must be positive integers, got ${n}`);
    }
  }
}

/** Frames of an animated thumbnail when `max_thumbnail_frames` is not given. */
export const DEFAULT_MAX_FRAMES = 1000;

/** Seconds of the time budget when `thumbnail_timeout` is not given. */
export const DEFAULT_TIMEOUT_SECONDS = 10;

/**
 * Options of a Thumbnailer: `max_image_pixels`, `max_thumbnail_concurrency`,
 * `max_thumbnail_frames` and `thumbnail_timeout` (whole seconds, at least 1:
 * libvips counts in seconds).
 */
export interface ThumbnailerOptions {
  readonly maxImagePixels: number;
  readonly concurrency: number;
  readonly maxFrames?: number;
  readonly timeoutSeconds?: number;
}

/**
 * Reads headers and makes thumbnails. At most `concurrency` slots are held
 * at once (`withSlot`); `generate` takes one for its render, further calls
 * wait their turn.
 */
export class Thumbnailer {
  readonly #maxImagePixels: number;
  readonly #maxFrames: number;
  readonly #timeoutSeconds: number;
  readonly #semaphore: Semaphore;

  constructor(options: ThumbnailerOptions) {
    this.#maxImagePixels = options.maxImagePixels;
    this.#maxFrames = options.maxFrames ?? DEFAULT_MAX_FRAMES;
    this.#timeoutSeconds = Math.max(
      1,
      Math.ceil(options.timeoutSeconds ?? DEFAULT_TIMEOUT_SECONDS),
    );
    this.#semaphore = new Semaphore(options.concurrency);
  }

  /**
   * Runs `fn` holding one of the `concurrency` slots (FIFO; released however
   * `fn` ends). Load a source and call `render` inside it.
   * @throws the signal's reason if `signal` aborts while waiting for a slot.
   */
  withSlot<T>(fn: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    return this.#semaphore.run(fn, signal);
  }

  /**
   * The blur preview of `source` (blur-preview.ts: a tiny blurred WebP as a
   * data: URL) within this thumbnailer's pixel limit and time budget. Call
   * it holding a slot, after the picture's header was found readable.
   */
  blurPreview(source: Buffer): Promise<string> {
    return renderBlurPreview(source, {
      limitInputPixels: this.#maxImagePixels,
      timeoutSeconds: this.#timeoutSeconds,
    });
  }

  /** What to pre-generate for `info` (thumbnailPlan with this thumbnailer's budgets). */
  plan(sizes: readonly ThumbnailSize[], info: ImageInfo): PlannedThumbnail[] {
    return thumbnailPlan(sizes, info, this.#maxImagePixels, this.#maxFrames);
  }

  /**
   * The header facts of `source`, or undefined when it is not an image
   * mxcd thumbnails. Reads only the header; never throws for bad input.
   */
  async probe(source: Buffer): Promise<ImageInfo | undefined> {
    try {
      return await inspect(source);
    } catch (error) {
      if (error instanceof NotAnImageError) return undefined;
      throw error;
    }
  }

  /** True when `info` is over `max_image_pixels`: `generate` would refuse it. */
  exceedsPixelLimit(info: ImageInfo): boolean {
    return exceedsLimit(info, this.#maxImagePixels);
  }

  /** @throws ImageTooLargeError when `info` is over `max_image_pixels` (no decoding needed). */
  assertPixelLimit(info: ImageInfo): void {
    if (exceedsLimit(info, this.#maxImagePixels)) {
      throw new ImageTooLargeError(info.width, info.height, this.#maxImagePixels);
    }
  }

  /**
   * A thumbnail of `source` for `request`, or `{ kind: "original" }` when
   * the original content should be served (see `servesOriginal`). Output:
   * an animated WebP when `request.animated` and the source animates within
   * the pixel budget, else a still of the first frame (see stillContentType).
   * EXIF orientation is applied and all metadata stripped. The same input and
   * request give byte-identical output.
   * @throws NotAnImageError for anything that is not a readable image.
   * @throws ImageTooLargeError (before decoding) over `max_image_pixels`;
   *   checked after the original-content test, which needs no decoding.
   * @throws the signal's reason if `signal` aborts while waiting for a turn.
   */
  async generate(
    source: Buffer,
    request: ThumbnailRequest,
    signal?: AbortSignal,
  ): Promise<ThumbnailResult> {
    assertSize(request);
    const info = await inspect(source);
    if (servesOriginal(info, request)) return { kind: "original" };
    this.assertPixelLimit(info);
    return this.withSlot(() => this.render(source, info, request), signal);
  }

  /**
   * Renders a thumbnail of `source`, whose header is `info`, for `request`
   * (no original-content or pixel-limit decision here: see `generate`).
   * Call it inside `withSlot`. An animated request gets a still when the
   * animation is over the frame/pixel budget or its render runs over the
   * time budget (`fallback` says which).
   * @throws ThumbnailTimeoutError when a still runs over the time budget.
   * @throws NotAnImageError / ImageTooLargeError as `generate`.
   */
  async render(
    source: Buffer,
    info: ImageInfo,
    request: ThumbnailRequest,
  ): Promise<RenderedThumbnail> {
    assertSize(request);
    const g = thumbnailGeometry(info, request);
    const wanted = request.animated && info.animated && info.orientation === 1;
    if (wanted && withinAnimationBudget(info, this.#maxImagePixels, this.#maxFrames)) {
      try {
        return await this.#pipeline(source, info, g, true);
      } catch (error) {
        if (!(error instanceof ThumbnailTimeoutError)) throw error;
        return { ...(await this.#pipeline(source, info, g, false)), fallback: "timeout" };
      }
    }
    const still = await this.#pipeline(source, info, g, false);
    return wanted ? { ...still, fallback: "budget" } : still;
  }

  async #pipeline(
    source: Buffer,
    info: ImageInfo,
    g: ThumbnailGeometry,
    animate: boolean,
  ): Promise<RenderedThumbnail> {
    const contentType = animate ? ANIMATED_THUMBNAIL_TYPE : stillContentType(info);
    const sharp = await loadSharp();
    try {
      let image = sharp(source, { animated: animate, limitInputPixels: this.#maxImagePixels });
      image = image.timeout({ seconds: this.#timeoutSeconds });
      if (!animate) image = image.autoOrient();
      if (g.resizeWidth !== info.width || g.resizeHeight !== info.height) {
        image = image.resize(g.resizeWidth, g.resizeHeight, { fit: "fill" });
      }
      if (g.width !== g.resizeWidth || g.height !== g.resizeHeight) {
        image = image.extract({ left: g.left, top: g.top, width: g.width, height: g.height });
      }
      const bytes = await encode(image, contentType).toBuffer();
      return { kind: "image", bytes, contentType, width: g.width, height: g.height };
    } catch (error) {
      if (/pixel limit/i.test(String(error))) {
        throw new ImageTooLargeError(info.width, info.height, this.#maxImagePixels);
      }
      // libvips stops a pipeline that runs over sharp's timeout with "timeout: N% complete".
      if (/timeout/i.test(String(error))) throw new ThumbnailTimeoutError(this.#timeoutSeconds);
      throw new NotAnImageError("the image could not be decoded", { cause: error });
    }
  }
}

function encode(image: sharp.Sharp, contentType: string): sharp.Sharp {
  switch (contentType) {
    case "image/jpeg":
      return image.jpeg({ quality: JPEG_QUALITY });
    case "image/webp":
      return image.webp({ quality: WEBP_QUALITY });
    default:
      return image.png();
  }
}

/** Reads the header of `source`; throws NotAnImageError for anything else. */
async function inspect(source: Buffer): Promise<ImageInfo> {
  const format = sniffImageFormat(source);
  if (!format) throw new NotAnImageError("not an image format mxcd thumbnails");
  const sharp = await loadSharp();
  let meta: sharp.Metadata;
  try {
    meta = await sharp(source, { limitInputPixels: false }).metadata();
  } catch (error) {
    throw new NotAnImageError("the image header could not be read", { cause: error });
  }
  const read = meta.format === "heif" && meta.compression === "av1" ? "avif" : meta.format;
  const width = meta.autoOrient?.width ?? meta.width;
  const height = meta.autoOrient?.height ?? meta.height;
  if (read !== format || !width || !height) {
    throw new NotAnImageError(`the header does not describe a ${format} image`);
  }
  const pages = meta.pages ?? 1;
  return {
    format,
    contentType: CONTENT_TYPES[format],
    width,
    height,
    orientation: meta.orientation ?? 1,
    pages,
    animated: pages > 1 && (format === "gif" || format === "webp"),
    hasAlpha: meta.hasAlpha ?? false,
  };
}

/**
 * The best stored thumbnail for a request when thumbnails are not generated
 * on demand, following Synapse's ThumbnailProvider._select_thumbnail: only
 * thumbnails of the requested method compete; those at least as large as the
 * request in one dimension beat all others; then, lowest first, crop ranks by
 * (aspect-ratio mismatch, not covering both dimensions, |Δw × Δh|, type
 * mismatch, byte length) and scale by (|Δw × Δh|, type mismatch, byte
 * length); ties go to the earlier entry. The wanted type is image/webp for
 * an animated request and image/png otherwise (as Synapse). Unlike Synapse,
 * an animated thumbnail is never chosen when `animated` is not true (the
 * spec's MUST NOT). Undefined when nothing matches.
 */
export function selectThumbnail(
  available: readonly StoredThumbnail[],
  request: ThumbnailSize & { readonly animated?: boolean },
): StoredThumbnail | undefined {
  const animated = request.animated === true;
  const wantedType = animated ? ANIMATED_THUMBNAIL_TYPE : "image/png";
  const { width: dw, height: dh } = request;
  let best: { rank: number[]; large: boolean; thumbnail: StoredThumbnail } | undefined;
  for (const t of available) {
    if (t.method !== request.method) continue;
    if (!animated && t.contentType === ANIMATED_THUMBNAIL_TYPE) continue;
    const large = t.width >= dw || t.height >= dh;
    const size = Math.abs((dw - t.width) * (dh - t.height));
    const type = t.contentType === wantedType ? 0 : 1;
    const rank =
      request.method === "crop"
        ? [
            Math.abs(dw * t.height - dh * t.width),
            dw <= t.width && dh <= t.height ? 0 : 1,
            size,
            type,
            t.length,
          ]
        : [size, type, t.length];
    if (!best || (large && !best.large) || (large === best.large && lexLess(rank, best.rank))) {
      best = { rank, large, thumbnail: t };
    }
  }
  return best?.thumbnail;
}

function lexLess(a: readonly number[], b: readonly number[]): boolean {
  for (let i = 0; i < a.length; i++) {
    if (a[i]! !== b[i]!) return a[i]! < b[i]!;
  }
  return false;
}

/**
 * The thumbnails to pre-generate for a source from the configured sizes,
 * each with the dimensions and content type `generate` will give it. Sizes
 * whose answer is the original content are skipped, duplicates (same output
 * size, method and type) appear once, and an animated source also gets an
 * animated WebP per size when its frames fit the pixel and frame budgets
 * (as Synapse does since it learnt `animated`). Empty when the image is
 * over `maxImagePixels`.
 */
export function thumbnailPlan(
  sizes: readonly ThumbnailSize[],
  info: ImageInfo,
  maxImagePixels: number,
  maxFrames = DEFAULT_MAX_FRAMES,
): PlannedThumbnail[] {
  if (exceedsLimit(info, maxImagePixels)) return [];
  const plan = new Map<string, PlannedThumbnail>();
  const variants = canAnimate(info, maxImagePixels, maxFrames) ? [false, true] : [false];
  for (const size of sizes) {
    assertSize(size);
    for (const animated of variants) {
      const request = { ...size, animated };
      if (servesOriginal(info, request)) continue;
      const { width, height } = thumbnailGeometry(info, size);
      const contentType = animated ? ANIMATED_THUMBNAIL_TYPE : stillContentType(info);
      const key = `${width}x${height}/${size.method}/${contentType}`;
      if (!plan.has(key))
        plan.set(key, { request, width, height, method: size.method, contentType });
    }
  }
  return [...plan.values()];
}
