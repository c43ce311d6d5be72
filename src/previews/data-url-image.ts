/**
 * `data:` image URLs found inside a page (`og:image`, an `<img>`, an oEmbed
 * thumbnail), which Synapse stores like fetched images (#11767); never the
 * page URL itself (parsePreviewUrl keeps that to http(s)).
 *
 * Decoding is the WHATWG fetch spec's "data: URL processor" as Node's own
 * `fetch` implements it (undici: media type parsing, forgiving base64,
 * percent-decoding); `data:` never touches the network, and nothing but a
 * `data:` URL is ever passed to it. What this module adds is the hostile-input
 * rules: the URL's length is checked before anything is decoded (base64 is
 * 4 characters for 3 bytes, percent-encoding at least 1 per byte, so a URL
 * within `maxChars(maxBytes)` cannot decode to much more than `maxBytes`),
 * the decoded size is checked again, and only `image/*` is accepted. Every
 * failure is a DataUrlImageError; the caller drops the image and keeps the
 * rest of the preview.
 */

/** Why a `data:` URL gave no image. */
export class DataUrlImageError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "DataUrlImageError";
  }
}

/** A decoded `data:` image. */
export interface DataUrlImage {
  /** The media type's essence, lower case (`image/png`). */
  readonly mediaType: string;
  readonly bytes: Uint8Array;
}

/** Whether `url` is a `data:` URL (scheme compared case-insensitively, as URL schemes are). */
export function isDataUrl(url: string): boolean {
  return /^\s*data:/i.test(url);
}

/** The longest `data:` URL that may hold `maxBytes` bytes, with room for the header. */
export function maxDataUrlChars(maxBytes: number): number {
  return Math.ceil(maxBytes / 3) * 4 + 1024;
}

/**
 * Decodes a `data:` URL holding an image of at most `maxBytes` bytes;
 * throws DataUrlImageError otherwise (not a data: URL, too long, malformed,
 * bad base64, not `image/*`, too large).
 */
export async function decodeDataUrlImage(url: string, maxBytes: number): Promise<DataUrlImage> {
  const trimmed = url.trim();
  if (!isDataUrl(trimmed)) throw new DataUrlImageError("not a data: URL");
  if (trimmed.length > maxDataUrlChars(maxBytes)) {
    throw new DataUrlImageError("data: URL too large");
  }
  let response: Response;
  let bytes: Uint8Array;
  try {
    response = await fetch(trimmed);
    bytes = new Uint8Array(await response.arrayBuffer());
  } catch (error) {
    throw new DataUrlImageError("malformed data: URL", { cause: error });
  }
  const mediaType = (response.headers.get("content-type") ?? "")
    .split(";", 1)[0]!
    .trim()
    .toLowerCase();
  if (!/^image\/[a-z0-9!#$&^_.+-]+$/.test(mediaType)) {
    throw new DataUrlImageError("data: URL is not an image");
  }
  if (bytes.length === 0) throw new DataUrlImageError("empty data: URL");
  if (bytes.length > maxBytes) throw new DataUrlImageError("data: URL too large");
  return { mediaType, bytes };
}
