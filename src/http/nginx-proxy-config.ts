/**
 * The nginx side of the attached shape, written from the one route table
 * (`ATTACHED_ROUTE_TABLE`): mxcd's route gate, this config and the table in
 * docs/attached.md are the same rows, so a path mxcd serves cannot be
 * forgotten by the proxy, nor a path it refuses be sent to it.
 *
 * The output is included in a `server` block (the client one and the
 * federation one): a few server-level directives every location inherits,
 * one regular-expression location per public row, then the homeserver's
 * location for the rest of `/_matrix` and `/_synapse/client` (Synapse's own
 * example; the rest of `/_synapse/admin` stays off the internet, and a web
 * client at `/` can stay). Choices, each from Synapse's docs/reverse_proxy.md
 * or the reference's §6:
 * - `proxy_pass` has no URI part (not even `/`): nginx then passes the
 *   request URI as the client sent it instead of a normalised copy, which
 *   would break X-Matrix signatures and odd but valid media ids;
 * - `X-Forwarded-For $remote_addr` replaces, not appends: mxcd and Synapse
 *   (`x_forwarded`) take the left-most entry, which a client could forge if
 *   nginx only appended the real address;
 * - `client_max_body_size` is mxcd's `max_upload_size`, and uploads stream
 *   through (`proxy_request_buffering off`), as downloads do.
 */
import { NGINX_LOCATION } from "../config/config-schema.js";
import { ATTACHED_ROUTE_TABLE } from "./attached-routes.js";

export interface NginxProxyOptions {
  /** mxcd's internal address, e.g. `http://127.0.0.1:8009`. */
  readonly mxcd: string;
  /** The homeserver's internal address, e.g. `http://127.0.0.1:8008`. */
  readonly homeserver: string;
  /** mxcd's `max_upload_size`, in bytes. */
  readonly maxUploadSize: number;
  /** `media_store.accel_redirect` with the store's absolute path: adds the internal location. */
  readonly accelRedirect?: AccelRedirectLocation;
  /**
   * Keep connections to mxcd and the homeserver open between requests: the
   * locations pass to the `upstream` blocks of {@link nginxUpstreamConfig}
   * (which must then be in the `http` block) with `Connection ""`. Without
   * it, `proxy_pass` names the addresses and nginx opens a new connection
   * to mxcd for every request.
   */
  readonly upstreamKeepalive?: boolean;
}

/** The `upstream` names of {@link nginxUpstreamConfig}. */
export const MXCD_UPSTREAM = "mxcd_media";
export const HOMESERVER_UPSTREAM = "mxcd_homeserver";
/** Idle connections each nginx worker keeps open to an upstream (nginx's `keepalive`). */
export const UPSTREAM_KEEPALIVE = 32;

/** Where nginx finds the files mxcd names in `X-Accel-Redirect`. */
export interface AccelRedirectLocation {
  /** `media_store.accel_redirect.location`, starting and ending with `/`. */
  readonly location: string;
  /** The media store's root folder, absolute. */
  readonly root: string;
}

/**
 * Download headers mxcd sets that nginx does not keep on an X-Accel-Redirect
 * (it keeps only Content-Type, Content-Disposition, Cache-Control, Expires,
 * Accept-Ranges and Set-Cookie of the upstream's answer): re-added from the
 * upstream's answer in the internal location, so a client sees the same
 * headers with and without accel_redirect.
 */
const ACCEL_COPIED_HEADERS = [
  "Content-Security-Policy",
  "X-Content-Security-Policy",
  "Referrer-Policy",
  "Cross-Origin-Resource-Policy",
  "X-Robots-Tag",
  "X-Content-Type-Options",
  "ETag",
  "Access-Control-Allow-Origin",
  "Access-Control-Allow-Methods",
  "Access-Control-Allow-Headers",
  "Access-Control-Expose-Headers",
] as const;

/**
 * The internal location of `media_store.accel_redirect`: mxcd answers a
 * download, after every check, with `X-Accel-Redirect: <location><key>`, and
 * nginx sends the file from here with sendfile. `internal`: a client asking
 * for the location itself gets 404. nginx's own validators are off (mxcd
 * answered If-None-Match already; its ETag is the constant "1" and it sends
 * no Last-Modified), ranges are nginx's.
 */
function nginxAccelLocation(accel: AccelRedirectLocation): string {
  if (!NGINX_LOCATION.test(accel.location) || /[;{}"'\\]/.test(accel.location)) {
    throw new Error(`accel_redirect.location: not a usable nginx location: ${accel.location}`);
  }
  if (!accel.root.startsWith("/") || /[;{}"'\\\s]/.test(accel.root)) {
    throw new Error(
      `media_store.path: give an absolute path without spaces or quotes: ${accel.root}`,
    );
  }
  const root = accel.root.endsWith("/") ? accel.root : `${accel.root}/`;
  const headers = ACCEL_COPIED_HEADERS.map(
    (name) =>
      `  add_header ${name} $upstream_http_${name.toLowerCase().replaceAll("-", "_")} always;`,
  );
  return `# mxcd's media_store.accel_redirect: after mxcd's checks, nginx sends the
# stored file itself (sendfile). Only reachable through X-Accel-Redirect.
location ^~ ${accel.location} {
  internal;
  alias ${root};
  sendfile on;
  tcp_nopush on;
  etag off;
  if_modified_since off;
  add_header Last-Modified "";
${headers.join("\n")}
}
`;
}

/** A `proxy_pass` target: scheme, host and port only. Throws for anything else. */
export function upstreamOrigin(name: string, url: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new Error(`${name}: not a URL: ${url}`);
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
    throw new Error(`${name}: must be an http:// or https:// URL: ${url}`);
  }
  if (parsed.username !== "" || parsed.password !== "") {
    throw new Error(`${name}: must not contain a user name or password`);
  }
  // A path (even "/") after the port makes nginx rewrite the URI it passes.
  if (parsed.pathname !== "/" || parsed.search !== "" || parsed.hash !== "") {
    throw new Error(
      `${name}: give scheme, host and port only (no path): nginx would normalise the URI: ${url}`,
    );
  }
  return parsed.origin;
}

/** An nginx size with the largest exact unit (nginx's k and m are powers of 1024). */
export function nginxSize(bytes: number): string {
  if (!Number.isSafeInteger(bytes) || bytes < 0) throw new Error(`not a size: ${bytes}`);
  if (bytes > 0 && bytes % 1024 ** 2 === 0) return `${bytes / 1024 ** 2}m`;
  if (bytes > 0 && bytes % 1024 === 0) return `${bytes / 1024}k`;
  return String(bytes);
}

/**
 * A route pattern as an nginx (PCRE) location regex. Only the plain subset
 * the table uses is accepted, so a future row with a construct that PCRE
 * or nginx's parser would read differently fails here, not in production.
 */
export function nginxRegex(pattern: RegExp): string {
  const source = pattern.source.replaceAll("\\/", "/");
  if (pattern.flags !== "" || !/^\^[\w/.*$-]+$/.test(source)) {
    throw new Error(`route pattern ${pattern} cannot be written as an nginx location`);
  }
  return source;
}

/** The homeserver's paths, as in Synapse's reverse_proxy.md. */
export const HOMESERVER_LOCATION = "~ ^(/_matrix|/_synapse/client)";

const HEADER = `# mxcd in front of a homeserver: written by \`mxcd proxy-config nginx\` from
# mxcd's route table. Include it in the server block of the client API, and
# in the one of the federation port (8448) too, since servers from before
# Matrix 1.11 fetch /_matrix/media/v3/download there. In those blocks, keep no
# other location that could take these paths first (a regular expression
# above the include, or a ^~ or = location), nor the directives below.
`;

/**
 * The `http`-level part of the proxy config with `upstreamKeepalive`: one
 * `upstream` block for mxcd and one for the homeserver, each keeping up to
 * {@link UPSTREAM_KEEPALIVE} idle HTTP/1.1 connections per nginx worker, so
 * a request does not pay a TCP connection set-up (and its TIME_WAIT) to
 * reach mxcd. nginx accepts `upstream` only in the `http` block, not in the
 * `server` blocks that include the rest.
 */
export function nginxUpstreamConfig(
  options: Pick<NginxProxyOptions, "mxcd" | "homeserver">,
): string {
  const block = (name: string, label: string, url: string) => {
    const origin = new URL(upstreamOrigin(label, url));
    const port = origin.port || (origin.protocol === "https:" ? "443" : "80");
    return `upstream ${name} {
  server ${origin.hostname}:${port};
  keepalive ${UPSTREAM_KEEPALIVE};
}
`;
  };
  return `# mxcd in front of a homeserver, the http-level part: written by \`mxcd
# proxy-config nginx --upstreams\`. Include it in nginx's http block (once),
# and the server-level part in the server blocks.
${block(MXCD_UPSTREAM, "--mxcd", options.mxcd)}
${block(HOMESERVER_UPSTREAM, "--homeserver", options.homeserver)}`;
}

/** The server-level directives every location inherits. */
function common(maxUploadSize: number, keepalive: boolean): string {
  return `
# mxcd's max_upload_size (mxcd checks it again while the body streams).
client_max_body_size ${nginxSize(maxUploadSize)};
# Stream uploads and downloads instead of spooling them to disk.
proxy_request_buffering off;
proxy_buffering off;
# Long-polls (quarantine_changes?timeout=, timeout_ms) and remote fetches.
proxy_read_timeout 300s;
proxy_http_version 1.1;${
    keepalive
      ? `
# Keep the upstream connections (upstream blocks with keepalive) open.
proxy_set_header Connection "";`
      : ""
  }
proxy_set_header Host $host:$server_port;
# Replace, not append: mxcd and Synapse (x_forwarded) take the left-most
# entry, which a client could otherwise forge.
proxy_set_header X-Forwarded-For $remote_addr;
proxy_set_header X-Forwarded-Proto $scheme;

# No URI part in proxy_pass, not even "/": the request URI then reaches mxcd
# and the homeserver as the client sent it, never normalised (Synapse's
# reverse_proxy.md). nginx picks the first regular expression that matches
# the normalised path: mxcd's paths, then the homeserver's.
`;
}

/**
 * The proxy config in front of mxcd and the homeserver: server-level
 * directives, then one location per public row of the route table, then the
 * homeserver's location.
 */
export function nginxProxyConfig(options: NginxProxyOptions): string {
  const keepalive = options.upstreamKeepalive === true;
  const target = (label: string, url: string, upstream: string) => {
    const origin = upstreamOrigin(label, url);
    return keepalive ? `${new URL(origin).protocol}//${upstream}` : origin;
  };
  const mxcd = target("--mxcd", options.mxcd, MXCD_UPSTREAM);
  const homeserver = target("--homeserver", options.homeserver, HOMESERVER_UPSTREAM);
  const locations = ATTACHED_ROUTE_TABLE.filter((route) => route.via === "proxy").map(
    (route) =>
      `# mxcd: ${route.what}\nlocation ~ ${nginxRegex(route.pattern)} { proxy_pass ${mxcd}; }\n`,
  );
  // The homeserver keeps the rest of the Matrix API, /_matrix/key/v2 and
  // /_matrix/client/versions included (mxcd answers those 404), as in
  // Synapse's example; /_synapse/admin beyond media is not proxied.
  locations.push(
    `# the homeserver: the rest of /_matrix, and /_synapse/client\nlocation ${HOMESERVER_LOCATION} { proxy_pass ${homeserver}; }\n`,
  );
  if (options.accelRedirect) locations.push(nginxAccelLocation(options.accelRedirect));
  return `${HEADER}${common(options.maxUploadSize, keepalive)}\n${locations.join("\n")}`;
}
