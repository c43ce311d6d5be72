/**
 * Sending a quarantine placeholder (media/quarantine-placeholder.ts): 200,
 * `image/png`, `inline; filename=quarantined.png`, the download security
 * headers, and `Cache-Control: no-store` with no ETag, Last-Modified or
 * Accept-Ranges — a browser or CDN that kept the placeholder would go on
 * showing it after an unquarantine, and one that revalidated with the
 * media's constant ETag (media-response.ts) would be told its copy of the
 * original is still good. Ranges and If-None-Match are ignored: the whole
 * image, every time.
 */
import type { FastifyReply } from "fastify";
import { contentDisposition, downloadSecurityHeaders } from "../media/media-headers.js";
import { PLACEHOLDER_FILE_NAME, type Placeholder } from "../media/quarantine-placeholder.js";

const PNG = "image/png";

const HEADERS: Readonly<Record<string, string>> = Object.freeze({
  ...Object.fromEntries(
    Object.entries(downloadSecurityHeaders()).map(([name, value]) => [name.toLowerCase(), value]),
  ),
  "cache-control": "no-store",
  "content-type": PNG,
  "content-disposition": contentDisposition(PNG, PLACEHOLDER_FILE_NAME),
});

/** Answers with `placeholder` (see the note above). */
export function sendPlaceholder(reply: FastifyReply, placeholder: Placeholder) {
  return reply
    .code(200)
    .headers(HEADERS)
    .header("content-length", placeholder.png.length)
    .send(placeholder.png);
}
