/**
 * Which requests the serving fast path (fast-path.ts) may even look at: a
 * pure, strict reading of the raw request URL. Anything it does not
 * recognise in full is left to Fastify's routes, which answer it as they
 * always did — so this parser may refuse freely but must never accept a
 * URL that Fastify would read differently.
 *
 * Accepted, and nothing else:
 * - GET paths of the download and thumbnail routes (client v1 and the
 *   legacy `/_matrix/media/{v3,r0,v1}/`), with exactly the segments of the
 *   route: server name, media id (`[A-Za-z0-9_-]{1,255}`, the grammar of
 *   parseMediaAddress) and, for downloads, an optional file name;
 * - characters that no router or query parser decodes or splits on
 *   (`[A-Za-z0-9._~-]` in segments, and `:` in the server name's; no `%`,
 *   `+`, `;`, `#`, empty segments, `.` or `..` segments), so the values read
 *   here are the values Fastify would read;
 * - query parameters from a short list, each at most once, with values in
 *   the forms the routes accept (an invalid one is Fastify's 400 to give):
 *   `access_token`, `timeout_ms` (digits), `allow_remote`/`allow_redirect`
 *   (`true`/`false`) and, for thumbnails, `width`, `height` (1–5 digits,
 *   not 0), `method` (`crop`/`scale`) and `animated` (`true`/`false`).
 *   Everything else — the admin quarantine bypass included — is refused.
 */
import type { ThumbnailRequest } from "../thumbnails/thumbnailer.js";

/** A download or thumbnail request the fast path may answer. */
export interface FastPathRequest {
  readonly kind: "download" | "thumbnail";
  /** A legacy unauthenticated `/_matrix/media/*` path. */
  readonly legacy: boolean;
  /** The route pattern Fastify matches, for the metrics label. */
  readonly route: string;
  readonly serverName: string;
  readonly mediaId: string;
  /** The download's file name segment, when present. */
  readonly fileName: string | undefined;
  /** `access_token` from the query, when present. */
  readonly queryToken: string | undefined;
  /** The thumbnail wanted (thumbnails only). */
  readonly thumbnail: ThumbnailRequest | undefined;
}

const CLIENT_V1 = "/_matrix/client/v1/media/";
const LEGACY = /^\/_matrix\/media\/(v3|r0|v1)\//;
const SEGMENT = /^[A-Za-z0-9._~-]{1,255}$/;
/** A server name may carry a port (`example.org:8448`); `:` is no delimiter in a path. */
const SERVER_NAME = /^[A-Za-z0-9._~:-]{1,255}$/;
const MEDIA_ID = /^[A-Za-z0-9_-]{1,255}$/;
const DIGITS = /^[0-9]{1,15}$/;
const SIZE = /^[0-9]{1,5}$/;
const LEGACY_PREFIXES = {
  v3: "/_matrix/media/v3/",
  r0: "/_matrix/media/r0/",
  v1: "/_matrix/media/v1/",
} as const;
/**
 * The route patterns (metrics labels), built once: a pattern built per
 * request is a new string to hash at every metrics look-up.
 */
const ROUTES = new Map(
  [CLIENT_V1, ...Object.values(LEGACY_PREFIXES)].map((prefix) => {
    const of = (kind: string) =>
      [
        `${prefix}${kind}/:serverName/:mediaId`,
        `${prefix}${kind}/:serverName/:mediaId/:fileName`,
      ] as const;
    return [prefix, { download: of("download"), thumbnail: of("thumbnail") }] as const;
  }),
);
/** Longer URLs are left to Fastify (ids are at most 255 characters). */
const MAX_URL = 1024;

/** The request `url` (raw, as Node gives it) if the fast path may answer it; else undefined. */
export function parseFastPathRequest(url: string): FastPathRequest | undefined {
  if (url.length > MAX_URL) return undefined;
  const q = url.indexOf("?");
  const path = q === -1 ? url : url.slice(0, q);
  let rest: string;
  let legacy: boolean;
  let prefix: string;
  if (path.startsWith(CLIENT_V1)) {
    legacy = false;
    prefix = CLIENT_V1;
    rest = path.slice(CLIENT_V1.length);
  } else {
    const version = LEGACY.exec(path);
    if (!version) return undefined;
    legacy = true;
    prefix = LEGACY_PREFIXES[version[1] as keyof typeof LEGACY_PREFIXES];
    rest = path.slice(prefix.length);
  }
  const segments = rest.split("/");
  const kind = segments[0];
  if (kind !== "download" && kind !== "thumbnail") return undefined;
  const parts = segments.length - 1;
  if (parts < 2 || parts > (kind === "download" ? 3 : 2)) return undefined;
  for (let i = 1; i < segments.length; i++) {
    const segment = segments[i]!;
    if (!(i === 1 ? SERVER_NAME : SEGMENT).test(segment)) return undefined;
    if (segment === "." || segment === "..") return undefined;
  }
  const serverName = segments[1]!;
  const mediaId = segments[2]!;
  if (!MEDIA_ID.test(mediaId)) return undefined;
  const fileName = segments[3];
  const query = q === -1 ? undefined : parseQuery(url.slice(q + 1), kind);
  if (query === null) return undefined;
  let thumbnail: ThumbnailRequest | undefined;
  if (kind === "thumbnail") {
    thumbnail = thumbnailOf(query);
    if (!thumbnail) return undefined;
  }
  return {
    kind,
    legacy,
    route: ROUTES.get(prefix)![kind][fileName === undefined ? 0 : 1],
    serverName,
    mediaId,
    fileName,
    queryToken: query?.get("access_token"),
    thumbnail,
  };
}

/**
 * `parseFastPathRequest` with a memory of the URLs it accepted: a hot item's
 * URL comes back again and again (an avatar in every room list), and one Map
 * look-up costs less than reading the URL again, its query most of all
 * (bench/README.md, "Sixth session"). The answers are frozen and shared.
 * Bounded: at most `max` URLs, all forgotten at once when full, so a stream
 * of distinct URLs costs one parse each, as without the memory. Never
 * remembered: a URL with an `access_token` (no secret is kept) and a refused
 * one (it goes on to Fastify, which costs far more than the parse).
 */
export function rememberingRequestParser(max = 1024): (url: string) => FastPathRequest | undefined {
  const known = new Map<string, FastPathRequest>();
  return (url) => {
    const remembered = known.get(url);
    if (remembered !== undefined) return remembered;
    const request = parseFastPathRequest(url);
    if (request === undefined || request.queryToken !== undefined) return request;
    if (known.size >= max) known.clear();
    if (request.thumbnail) Object.freeze(request.thumbnail);
    known.set(url, Object.freeze(request));
    return request;
  };
}

/** The checks on one parameter's value; a name not listed here is refused. */
const PARAMS: Readonly<Record<string, (value: string) => boolean>> = {
  access_token: (v) => SEGMENT.test(v),
  timeout_ms: (v) => DIGITS.test(v),
  allow_remote: (v) => v === "true" || v === "false",
  allow_redirect: (v) => v === "true" || v === "false",
};
const THUMBNAIL_PARAMS: Readonly<Record<string, (value: string) => boolean>> = {
  ...PARAMS,
  width: (v) => SIZE.test(v),
  height: (v) => SIZE.test(v),
  method: (v) => v === "crop" || v === "scale",
  animated: (v) => v === "true" || v === "false",
};

/** The parameters, or null when any is unknown, repeated, valueless or malformed. */
function parseQuery(query: string, kind: "download" | "thumbnail"): Map<string, string> | null {
  const checks = kind === "thumbnail" ? THUMBNAIL_PARAMS : PARAMS;
  const params = new Map<string, string>();
  if (query === "") return params;
  for (const pair of query.split("&")) {
    const eq = pair.indexOf("=");
    if (eq === -1) return null;
    const name = pair.slice(0, eq);
    const value = pair.slice(eq + 1);
    const check = Object.hasOwn(checks, name) ? checks[name] : undefined;
    if (!check || params.has(name) || !check(value)) return null;
    params.set(name, value);
  }
  return params;
}

/** The thumbnail parameters as thumbnailRequestOf reads them, or undefined (Fastify's 400). */
function thumbnailOf(query: Map<string, string> | undefined): ThumbnailRequest | undefined {
  const width = Number(query?.get("width"));
  const height = Number(query?.get("height"));
  // Absent (NaN) or 0: Fastify's 400.
  if (!(width >= 1 && height >= 1)) return undefined;
  const method = query?.get("method") === "crop" ? "crop" : "scale";
  const animated = query?.get("animated") === "true";
  return { width: Math.min(width, 10_000), height: Math.min(height, 10_000), method, animated };
}
