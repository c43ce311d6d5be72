/**
 * Placeholder images for quarantined media (`quarantine_placeholder`,
 * docs/trust-and-safety.md "Quarantine placeholder"). Off by default: a
 * quarantined item answers 404 M_NOT_FOUND, as in Synapse. When on, the
 * client download and/or thumbnail routes answer a `QuarantinedMediaError`
 * with a generated PNG instead (matrix-media-repo's `replaceThumbnails` /
 * `replaceDownloads`); never the federation routes, never the admin bypass.
 *
 * Design:
 * - The image is a mid-grey field with lighter diagonal stripes, 8-bit
 *   greyscale, written by the tiny PNG encoder below over node:zlib: no
 *   sharp (which must not load at start-up), nothing read from the store,
 *   so it cannot carry a byte of the original.
 * - Size. A thumbnail placeholder is the requested box, for `crop` and
 *   `scale` alike (a crop thumbnail of a large enough image is exactly the
 *   box; a scale one fits in it, and a placeholder has no aspect ratio of its
 *   own — taking the original's would leak it). A box larger than
 *   `maxSide` × `maxSide` is shrunk to fit, keeping its aspect ratio, each
 *   side at least 1. A download placeholder is always 512 × 512.
 * - Bounds. `maxSide` is the largest side of the configured thumbnail
 *   sizes, at most 1,024 (800 when no size is configured), so one image is
 *   at most ~1 MiB of raw pixels, built synchronously (one at a time, never a
 *   queue of buffers). Encoded images are kept in an LRU keyed by size,
 *   bounded by `PLACEHOLDER_CACHE_ENTRIES` images and `PLACEHOLDER_CACHE_BYTES`
 *   (least recently used evicted): a client
 *   asking for every size costs CPU per request, never memory.
 */
import { deflateSync } from "node:zlib";
import { LRUCache } from "lru-cache";
import { QuarantinedMediaError } from "./quarantined-media-error.js";

/** Hard cap on a placeholder's side, whatever `thumbnail_sizes` says. */
export const PLACEHOLDER_MAX_SIDE = 1024;
/** Side used when no thumbnail size is configured (Synapse's largest default). */
const DEFAULT_MAX_SIDE = 800;
/** The download placeholder (matrix-media-repo also answers 512 × 512). */
export const DOWNLOAD_PLACEHOLDER_SIDE = 512;
/** The file name every placeholder is sent with: never the original's. */
export const PLACEHOLDER_FILE_NAME = "quarantined.png";
/** Encoded placeholders kept at most (the largest compresses to ~4.5 KiB)... */
export const PLACEHOLDER_CACHE_ENTRIES = 256;
/** ...and their bytes at most. */
export const PLACEHOLDER_CACHE_BYTES = 2 * 1024 * 1024;

const BACKGROUND = 0x80;
const STRIPE = 0xa0;
const STRIPE_PERIOD = 16;
const STRIPE_WIDTH = 5;

export interface QuarantinePlaceholderSettings {
  /** `quarantine_placeholder.thumbnails`. */
  readonly thumbnails: boolean;
  /** `quarantine_placeholder.downloads`. */
  readonly downloads: boolean;
  /** The configured thumbnail sizes, whose largest side bounds a placeholder. */
  readonly thumbnailSizes: readonly { readonly width: number; readonly height: number }[];
}

/** A placeholder to send: PNG bytes of `width` × `height`. */
export interface Placeholder {
  readonly png: Buffer;
  readonly width: number;
  readonly height: number;
}

export type PlaceholderKind = "thumbnail" | "download";

export class QuarantinePlaceholders {
  /** Placeholders served, by kind (`mxcd_quarantine_placeholders_served_total`). */
  readonly served: Record<PlaceholderKind, number> = { thumbnail: 0, download: 0 };
  readonly #maxSide: number;
  readonly #images = new LRUCache<string, Placeholder>({
    max: PLACEHOLDER_CACHE_ENTRIES,
    maxSize: PLACEHOLDER_CACHE_BYTES,
    sizeCalculation: (p) => p.png.length,
  });

  constructor(private readonly settings: QuarantinePlaceholderSettings) {
    this.#maxSide = placeholderMaxSide(settings.thumbnailSizes);
  }

  /**
   * The placeholder answering a thumbnail request of `width` × `height` that
   * failed with `error`; undefined (rethrow `error`) unless the error says
   * the media is quarantined and thumbnail placeholders are on.
   */
  forThumbnail(error: unknown, wanted: { width: number; height: number }): Placeholder | undefined {
    if (!(error instanceof QuarantinedMediaError) || !this.settings.thumbnails) return undefined;
    const { width, height } = placeholderSize(wanted, this.#maxSide);
    this.served.thumbnail += 1;
    return this.#image(width, height);
  }

  /** As `forThumbnail`, for a download: the 512 × 512 placeholder. */
  forDownload(error: unknown): Placeholder | undefined {
    if (!(error instanceof QuarantinedMediaError) || !this.settings.downloads) return undefined;
    this.served.download += 1;
    return this.#image(DOWNLOAD_PLACEHOLDER_SIDE, DOWNLOAD_PLACEHOLDER_SIDE);
  }

  /** Entries and bytes held by the image cache (for tests of its bound). */
  get cached(): { entries: number; bytes: number } {
    return { entries: this.#images.size, bytes: this.#images.calculatedSize };
  }

  #image(width: number, height: number): Placeholder {
    const key = `${width}x${height}`;
    let image = this.#images.get(key);
    if (!image) {
      image = { png: stripedPng(width, height), width, height };
      this.#images.set(key, image);
    }
    return image;
  }
}

/** The largest side a thumbnail placeholder may have for these configured sizes. */
export function placeholderMaxSide(
  sizes: readonly { readonly width: number; readonly height: number }[],
): number {
  if (sizes.length === 0) return DEFAULT_MAX_SIDE;
  const largest = Math.max(...sizes.map((s) => Math.max(s.width, s.height)));
  return Math.min(largest, PLACEHOLDER_MAX_SIDE);
}

/**
 * The placeholder size for a requested box: the box itself when both sides
 * are at most `maxSide`, else the box shrunk to fit `maxSide` × `maxSide`
 * keeping its aspect ratio (floor); every side at least 1.
 */
export function placeholderSize(
  wanted: { width: number; height: number },
  maxSide: number,
): { width: number; height: number } {
  const width = Math.max(1, Math.floor(wanted.width));
  const height = Math.max(1, Math.floor(wanted.height));
  const scale = Math.min(1, maxSide / width, maxSide / height);
  if (scale === 1) return { width, height };
  return {
    width: Math.max(1, Math.min(maxSide, Math.floor(width * scale))),
    height: Math.max(1, Math.min(maxSide, Math.floor(height * scale))),
  };
}

/** A greyscale PNG of `width` × `height`: mid-grey with lighter diagonal stripes. */
export function stripedPng(width: number, height: number): Buffer {
  // Pixel (x, y) is a stripe when (x + y) mod period < stripe width: row y
  // is the same pattern shifted by y, so every row is one copy out of it.
  const pattern = Buffer.alloc(width + STRIPE_PERIOD);
  for (let i = 0; i < pattern.length; i++) {
    pattern[i] = i % STRIPE_PERIOD < STRIPE_WIDTH ? STRIPE : BACKGROUND;
  }
  const stride = width + 1;
  const raw = Buffer.alloc(stride * height); // each row's filter byte: 0 (None)
  for (let y = 0; y < height; y++) {
    const shift = y % STRIPE_PERIOD;
    pattern.copy(raw, y * stride + 1, shift, shift + width);
  }
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header[8] = 8; // bit depth
  header[9] = 0; // colour type: greyscale
  // Compression, filter and interlace methods: 0.
  return Buffer.concat([
    PNG_SIGNATURE,
    chunk("IHDR", header),
    chunk("IDAT", deflateSync(raw)),
    chunk("IEND", Buffer.alloc(0)),
  ]);
}

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/** A PNG chunk: length, type, data, CRC-32 of type and data (PNG spec §5.3). */
function chunk(type: string, data: Buffer): Buffer {
  const out = Buffer.alloc(12 + data.length);
  out.writeUInt32BE(data.length, 0);
  out.write(type, 4, "latin1");
  data.copy(out, 8);
  out.writeUInt32BE(crc32(out.subarray(4, 8 + data.length)), 8 + data.length);
  return out;
}

/** CRC-32 (ISO 3309, as PNG uses); zlib.crc32 is missing before Node 20.15. */
const CRC_TABLE = Uint32Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const byte of bytes) c = CRC_TABLE[(c ^ byte) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
