/**
 * Response headers for media downloads and thumbnails, as Synapse sends them
 * (matrix-media-spec.md §2, synapse-media-admin.md §6.3). Pure functions: the
 * caller adds Content-Length, ETag and CORS.
 *
 * These are security rules (an inline `text/html` or SVG from a user would run
 * script on the media origin), hence the allow-list and the strict filename
 * encoding written out here rather than taken from a library whose encoding
 * differs from what Matrix clients and Complement expect.
 */

/** Types Synapse gives `; charset=UTF-8` when they arrive without parameters. */
const TEXT_CONTENT_TYPES: ReadonlySet<string> = new Set([
  "text/css",
  "text/csv",
  "text/html",
  "text/calendar",
  "text/plain",
  "text/javascript",
  "application/json",
  "application/ld+json",
  "application/rtf",
  "image/svg+xml",
  "text/xml",
]);

/** Types safe to render in a browser (Synapse's list). SVG is deliberately absent. */
const INLINE_CONTENT_TYPES: ReadonlySet<string> = new Set([
  "text/css",
  "text/plain",
  "text/csv",
  "application/json",
  "application/ld+json",
  "image/jpeg",
  "image/gif",
  "image/png",
  "image/apng",
  "image/webp",
  "image/avif",
  "video/mp4",
  "video/webm",
  "video/ogg",
  "video/quicktime",
  "audio/mp4",
  "audio/webm",
  "audio/aac",
  "audio/mpeg",
  "audio/ogg",
  "audio/wave",
  "audio/wav",
  "audio/x-wav",
  "audio/x-pn-wav",
  "audio/flac",
  "audio/x-flac",
]);

const OCTET_STREAM = "application/octet-stream";

/** Visible ASCII, space and tab: what a stored type may hold to be sent as it is. */
const HEADER_SAFE = /^[\x20-\x7e\t]+$/;

/** RFC 2616 separators; with CTLs, space and non-ASCII they keep a name from being a token. */
const SEPARATORS = new Set('()<>@,;:\\"/[]?={}');

/** RFC 3986 unreserved characters: the only bytes `filename*` leaves unencoded. */
const UNRESERVED = /^[A-Za-z0-9\-._~]$/;

/** The fixed download headers; see `downloadSecurityHeaders`. */
const SECURITY_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  // The spec's recommended sandbox, plus Synapse's ` media-src 'self';`.
  "Content-Security-Policy":
    "sandbox; default-src 'none'; script-src 'none'; plugin-types application/pdf; " +
    "style-src 'unsafe-inline'; media-src 'self'; object-src 'self';",
  "X-Content-Security-Policy": "sandbox;",
  "Referrer-Policy": "no-referrer",
  "Cross-Origin-Resource-Policy": "cross-origin",
  "X-Robots-Tag": "noindex, nofollow, noarchive, noimageindex",
  // A CDN may keep the bytes but must revalidate each request, so that auth and
  // quarantine are re-checked by us (Synapse sends a constant ETag with this).
  "Cache-Control": "public,max-age=86400,s-maxage=0,proxy-revalidate",
  // Browsers must take the type we send, never guess script or HTML from the
  // bytes (not in Synapse; see MEDIA_NOSNIFF for the responses outside this set).
  "X-Content-Type-Options": "nosniff",
});

/** The header that stops browsers from sniffing a media response's type. */
export const MEDIA_NOSNIFF: Readonly<Record<string, string>> = Object.freeze({
  "X-Content-Type-Options": "nosniff",
});

/**
 * The Content-Type to send for a stored media type. Missing, empty or
 * non-printable-ASCII types become `application/octet-stream` (the spec allows
 * that for unknown or plainly wrong types, and it keeps junk out of the header).
 * A type on Synapse's text list with no parameters gets `; charset=UTF-8`; as in
 * Synapse, a type with any parameter (`text/css; charset=UTF-16`) is left alone.
 * Everything else is sent unchanged: no sniffing, bogus `img/png` stays.
 */
export function contentTypeHeader(mediaType: string | null): string {
  if (mediaType === null || mediaType.trim() === "" || !HEADER_SAFE.test(mediaType)) {
    return OCTET_STREAM;
  }
  if (TEXT_CONTENT_TYPES.has(mediaType.toLowerCase())) return `${mediaType}; charset=UTF-8`;
  return mediaType;
}

/**
 * True when media of this type may be shown inline: the type, lowercased and
 * without parameters (`Text/Plain; charset=utf-8` → `text/plain`), is on the
 * allow-list. Null (unknown type) is never inline.
 */
export function isInlineType(mediaType: string | null): boolean {
  if (mediaType === null) return false;
  const essence = mediaType.split(";", 1)[0]!.trim().toLowerCase();
  return INLINE_CONTENT_TYPES.has(essence);
}

/** True when every character is printable ASCII and not a separator (an RFC 2616 token). */
function isToken(name: string): boolean {
  for (const char of name) {
    const code = char.codePointAt(0)!;
    if (code <= 0x20 || code >= 0x7f || SEPARATORS.has(char)) return false;
  }
  return true;
}

/**
 * RFC 5987 `value-chars`: the UTF-8 bytes of `name`, every byte outside the
 * unreserved set as `%XX` with uppercase hex. (Lone surrogates become U+FFFD.)
 * Unlike Synapse, which uses Python's `quote` and so leaves `/` bare, `/` is
 * encoded too; both forms parse the same.
 */
function percentEncodeUtf8(name: string): string {
  let out = "";
  for (const byte of Buffer.from(name, "utf8")) {
    const char = String.fromCharCode(byte);
    out += UNRESERVED.test(char) ? char : `%${byte.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return out;
}

/**
 * The Content-Disposition value: `inline` for allow-listed types, else
 * `attachment` — thumbnails included: the spec's "thumbnails MUST be inline"
 * holds because their types, taken from the image bytes, are on the list,
 * and a stored row claiming another type is not trusted with `inline`; then, when
 * `fileName` is non-empty, `; filename=NAME` if NAME is a token or
 * `; filename*=utf-8''<percent-encoded UTF-8>` otherwise. A null or empty name
 * gives the bare disposition, never `filename=""` (Go's parser rejects it).
 */
export function contentDisposition(mediaType: string | null, fileName: string | null): string {
  const disposition = isInlineType(mediaType) ? "inline" : "attachment";
  if (fileName === null || fileName === "") return disposition;
  if (isToken(fileName)) return `${disposition}; filename=${fileName}`;
  return `${disposition}; filename*=utf-8''${percentEncodeUtf8(fileName)}`;
}

/**
 * The fixed headers of every media download (a frozen object; copy it to add
 * more): sandboxing CSP with Synapse's ` media-src 'self';`,
 * X-Content-Security-Policy, Referrer-Policy, Cross-Origin-Resource-Policy,
 * X-Robots-Tag, Cache-Control and X-Content-Type-Options: nosniff. Synapse
 * sends the three CSP/referrer headers on downloads only; they do no harm on
 * thumbnails.
 */
export function downloadSecurityHeaders(): Readonly<Record<string, string>> {
  return SECURITY_HEADERS;
}
