/**
 * Strict parsing of `mxc://<server-name>/<media-id>` strings found in event
 * content and profiles (Matrix spec, content repository "Matrix Content (mxc://)
 * URIs"). Anything that is not exactly that shape is not a reference: no
 * query, fragment, extra path segment, whitespace or non-string value.
 */
import { isValidMediaId } from "./media-id.js";
import { isValidServerName } from "./server-name.js";

/** The two halves of a well-formed `mxc://` URI. */
export interface MxcUri {
  readonly origin: string;
  readonly mediaId: string;
}

const PREFIX = "mxc://";

/**
 * The origin and media id of `value`, or undefined when it is not a string of
 * the form `mxc://<server>/<id>` with a valid server name (server-name.ts; `.`
 * and `..` refused as in media-id.ts) and a media id of `[A-Za-z0-9_-]`.
 */
export function parseMxcUri(value: unknown): MxcUri | undefined {
  if (typeof value !== "string" || !value.startsWith(PREFIX)) return undefined;
  const rest = value.slice(PREFIX.length);
  const slash = rest.indexOf("/");
  if (slash <= 0) return undefined;
  const origin = rest.slice(0, slash);
  const mediaId = rest.slice(slash + 1);
  if (!isValidServerName(origin) || origin === "." || origin === "..") return undefined;
  if (!isValidMediaId(mediaId)) return undefined;
  return { origin, mediaId };
}

/** `mxc://<origin>/<mediaId>`. */
export function formatMxcUri(origin: string, mediaId: string): string {
  return `${PREFIX}${origin}/${mediaId}`;
}
