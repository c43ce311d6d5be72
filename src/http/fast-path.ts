/**
 * The serving fast path (docs/deployment.md, "Fast path for cached media"):
 * a cache hit of a local download or stored thumbnail is answered by a plain
 * Node `http` request handler that runs before Fastify, with the same caches,
 * the same checks and the same header sets as the routes, so it costs about
 * what Node's own `http` costs (bench/README.md, "Where the hot path stands").
 *
 * Design note.
 * - It answers only clean hits and hands everything else to Fastify
 *   untouched (`false`): a URL fast-path-request.ts does not accept in full,
 *   a method other than GET, Range or If-None-Match headers, a request body,
 *   a token that is missing or not in the token cache (or refused: expired,
 *   deactivated), media that is not local, not in the metadata cache,
 *   quarantined, pending, or hidden on a legacy path, a thumbnail that is not
 *   a stored one in the cached list (or whose pre-generation is running),
 *   bytes not in the byte cache, presigned redirects, X-Forwarded-For
 *   addresses, a server that is closing. So every refusal, error, 304, 206,
 *   416 and miss is Fastify's answer exactly as before; nothing here throws a
 *   Matrix error.
 * - An entry that was cached and has expired (`media_cache.metadata_ttl`) is
 *   read again here, through the caches, instead of handing the request on:
 *   the decision is made again on what was read, and the answer is given here
 *   or the request handed to Fastify after all (`core.pass`). Never-cached
 *   tokens and media go straight to Fastify (no extra query). The re-reads
 *   count their own cache hits and misses, as the routes' reads would; a
 *   request handed on after one is counted again by the routes' reads.
 * - Nothing is read or counted until the answer is certain: the caches are
 *   peeked (`cached*`), and the hits a Fastify answer would have counted
 *   (token, media row, thumbnail list, bytes) are counted only when this
 *   answers. The byte cache is peeked last, and its peek counts its hit.
 * - The answer is the routes' answer byte for byte: the CORS headers of the
 *   onRequest hook, nosniff, the download header set (media-response.ts),
 *   Content-Length, the same body — or, with `accel_redirect`, the same
 *   X-Accel-Redirect answer. test/fast-path.test.ts compares the two paths.
 * - Each answer is counted in the HTTP metrics with the route pattern
 *   Fastify would have matched, logged with the same "request completed"
 *   line (request-log-line.ts), and counted in
 *   `mxcd_fast_path_requests_total{route,result}`.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { performance } from "node:perf_hooks";
import type { Registry } from "prom-client";
import { hashAccessToken } from "../accounts/access-token.js";
import type { AccountService, Requester } from "../accounts/account-service.js";
import type {
  LocalMedia,
  LocalThumbnail,
  MediaMetadataCache,
} from "../cache/media-metadata-cache.js";
import type { TokenCache } from "../cache/token-cache.js";
import type { RequestLogWriter } from "../logging/request-log-line.js";
import type { AccessTimes } from "../media/access-times.js";
import type { ThumbnailService } from "../media/thumbnail-service.js";
import { localMediaKey } from "../storage/media-paths.js";
import type { ThumbnailRequest } from "../thumbnails/thumbnailer.js";
import { type FastPathRequest, rememberingRequestParser } from "./fast-path-request.js";
import { registerFastPathMetrics } from "./http-metrics.js";
import type { MediaServing } from "./media-response.js";

/** What the fast path needs of the services: the caches' peeks and the same decisions. */
export interface FastPathDeps {
  readonly serverName: string;
  readonly accounts: Pick<AccountService, "cachedRequester" | "requesterOf">;
  readonly tokenCache: Pick<TokenCache, "stats" | "expiredOwner">;
  readonly rows: Pick<
    MediaMetadataCache,
    | "cachedLocal"
    | "cachedLocalThumbnails"
    | "expiredLocal"
    | "expiredLocalThumbnails"
    | "getLocal"
    | "listLocalThumbnails"
    | "stats"
  >;
  readonly thumbnails: Pick<ThumbnailService, "storedAnswer" | "isPregeneratingLocal">;
  readonly serving: MediaServing;
  readonly accessTimes: Pick<AccessTimes, "local">;
  /** `enable_authenticated_media`: frozen media is hidden on legacy paths. */
  readonly authenticatedMedia: boolean;
  /** Client v1 downloads redirect to presigned URLs (S3): left to the route. */
  readonly presignedRedirects: boolean;
  readonly metrics: Registry;
}

/** What the HTTP core lends the fast path: ids, the request line and the HTTP metrics. */
export interface HttpCore {
  /** The next request id (the sequence Fastify's requests use too). */
  requestId(): string;
  /** Counts an answer in the HTTP request metrics (http-metrics.ts). */
  record(method: string, route: string, status: number, seconds: number): void;
  readonly log: RequestLogWriter;
  /** The CORS headers every answer carries (http-server.ts). */
  readonly corsHeaders: Readonly<Record<string, string>>;
  /** Hands a request the fast path took (returned true for) to Fastify after all. */
  readonly pass: (req: IncomingMessage, res: ServerResponse) => void;
}

/**
 * Answers `req` and returns true, or returns false having written nothing;
 * or returns true and later either answers or hands `req` to `core.pass`
 * (a cache entry being re-read).
 */
export type FastPathHandler = (
  req: IncomingMessage,
  res: ServerResponse,
  core: HttpCore,
) => boolean;

/** Filled in by the composition root once the services exist (createHttpServer takes it earlier). */
export interface FastPathSlot {
  handler: FastPathHandler | undefined;
}

const NOSNIFF = { "x-content-type-options": "nosniff" } as const;
const BEARER = /^Bearer\s+(\S+)\s*$/i;

/**
 * An answer worked out once per cached row (downloads) or per cached
 * thumbnail list and request (thumbnails), reused while the cache holds the
 * same object: the store key and the whole answer head, Content-Length (or
 * X-Accel-Redirect) included. Rows and lists are read-only and replaced, never
 * changed, when the media changes; every per-request check (token,
 * quarantine, pre-generation, bytes) still runs on every hit.
 */
interface Prepared {
  readonly mediaId: string;
  readonly urlCache: boolean;
  readonly key: string;
  readonly length: number;
  /** The answer head without Content-Length, flat `[name, value, ...]`. */
  readonly base: readonly string[];
  /** The whole head for a body of `length` bytes (or the X-Accel-Redirect answer). */
  readonly head: readonly string[];
}

/** Most distinct thumbnail requests remembered per cached list. */
const MAX_PREPARED_PER_LIST = 32;

export function createFastPath(deps: FastPathDeps): FastPathHandler {
  const counted = registerFastPathMetrics(deps.metrics);
  // Header set (frozen, shared) → the full answer head minus Content-Length,
  // as flat [name, value, ...] lists that writeHead takes as they are (no
  // object spread per answer; bench/README.md, "The hot path's last
  // microseconds"). For bytes, and for X-Accel-Redirect (no Accept-Ranges:
  // nginx adds its own).
  const heads = new WeakMap<object, Heads>();
  const headOf = (
    set: Readonly<Record<string, string>>,
    cors: Readonly<Record<string, string>>,
  ) => {
    let head = heads.get(set);
    if (!head) {
      // Insertion order as Fastify sends them: CORS (onRequest), nosniff (the
      // media routes' hook), then the set, whose nosniff keeps its place.
      const bytes: Readonly<Record<string, string>> = { ...cors, ...NOSNIFF, ...set };
      const { "accept-ranges": _, ...accel } = bytes;
      head = {
        bytes: Object.freeze(Object.entries(bytes).flat()),
        accel: Object.freeze(Object.entries(accel).flat()),
      };
      heads.set(set, head);
    }
    return head;
  };
  const prepare = (
    mediaId: string,
    urlCache: boolean,
    key: string,
    length: number,
    set: Readonly<Record<string, string>>,
    cors: Readonly<Record<string, string>>,
  ): Prepared => {
    const head = headOf(set, cors);
    const { accelLocation } = deps.serving;
    const base = accelLocation === null ? head.bytes : head.accel;
    return {
      mediaId,
      urlCache,
      key,
      length,
      base,
      head: Object.freeze(
        accelLocation === null
          ? [...base, "content-length", String(length)]
          : [...base, "x-accel-redirect", accelLocation + key, "content-length", "0"],
      ),
    };
  };
  const memo: Memo = { downloads: new WeakMap(), thumbnails: new WeakMap(), prepare };

  const send = (
    req: IncomingMessage,
    res: ServerResponse,
    core: HttpCore,
    request: FastPathRequest,
    url: string,
    start: number,
    answer: Answer,
  ) => {
    counted(request.kind, "answered");
    const status = 200;
    if (answer.bytes === undefined) {
      res.writeHead(status, answer.prepared.head as string[]);
      res.end();
    } else {
      const { prepared, bytes } = answer;
      // The cached bytes are the row's length; anything else is sent as it is.
      const head =
        bytes.length === prepared.length
          ? prepared.head
          : [...prepared.base, "content-length", String(bytes.length)];
      res.writeHead(status, head as string[]);
      res.end(bytes);
    }
    const ms = performance.now() - start;
    core.record("GET", request.route, status, ms / 1000);
    core.log({
      id: core.requestId(),
      method: "GET",
      url,
      // parseFastPathRequest read every parameter: only access_token is a secret.
      urlHasNoSecrets: request.queryToken === undefined,
      remoteAddress: req.socket.remoteAddress,
      statusCode: status,
      responseTime: ms,
    });
  };

  /**
   * The answer to a request whose token owner, row or thumbnail list was
   * cached and has expired: read again through the caches (as the routes
   * would: stored, or forgotten when gone), then decided again; undefined
   * when it is no longer a clean hit or a read failed (a database down):
   * Fastify's to answer.
   */
  const revalidate = async (
    req: IncomingMessage,
    request: FastPathRequest,
    cors: Readonly<Record<string, string>>,
    stale: Stale,
  ): Promise<Answer | undefined> => {
    try {
      const { mediaId } = request;
      const [requester, row, list] = await Promise.all([
        stale.tokenHash === undefined ? undefined : deps.accounts.requesterOf(stale.tokenHash),
        deps.rows.getLocal(mediaId),
        request.kind === "thumbnail" ? deps.rows.listLocalThumbnails(mediaId) : undefined,
      ]);
      const fresh: Lookups = {
        counts: false,
        requester: () => requester,
        row: () => row,
        thumbnails: () => list,
      };
      const found = hit(deps, request, req.rawHeaders, memo, cors, fresh);
      return found === undefined || "tokenHash" in found ? undefined : found;
    } catch {
      return undefined;
    }
  };

  const cachedLookups = peekLookups(deps);
  const parse = rememberingRequestParser();
  return (req, res, core) => {
    if (req.method !== "GET") return false;
    const url = req.url ?? "";
    const request = parse(url);
    if (!request) return false;
    const start = performance.now();
    const answer = hit(deps, request, req.rawHeaders, memo, core.corsHeaders, cachedLookups);
    if (answer === undefined) {
      counted(request.kind, "passed");
      return false;
    }
    if (!("tokenHash" in answer)) {
      send(req, res, core, request, url, start, answer);
      return true;
    }
    void revalidate(req, request, core.corsHeaders, answer)
      .then((fresh) => {
        if (fresh !== undefined && !res.headersSent) {
          send(req, res, core, request, url, start, fresh);
          return;
        }
        counted(request.kind, "passed");
        if (!res.headersSent) core.pass(req, res);
      })
      // Nothing above is expected to throw; if it does, this request ends, not the process.
      .catch(() => res.destroy());
    return true;
  };
}

/**
 * Where `hit` finds the requester, the row and the thumbnail list: the
 * caches' peeks (`counts`: the hits are counted once the answer is certain),
 * or what a re-read just returned (its reads counted themselves).
 */
interface Lookups {
  readonly counts: boolean;
  requester(tokenHash: string): Requester | undefined;
  row(mediaId: string): LocalMedia | undefined;
  thumbnails(mediaId: string): readonly LocalThumbnail[] | undefined;
  /** True when a failed look-up was of an expired entry, worth reading again (peeks only). */
  expired?(what: "requester" | "row" | "thumbnails", key: string): boolean;
}

function peekLookups(deps: FastPathDeps): Lookups {
  return {
    counts: true,
    requester: (tokenHash) => deps.accounts.cachedRequester(tokenHash),
    row: (mediaId) => deps.rows.cachedLocal(mediaId),
    thumbnails: (mediaId) => deps.rows.cachedLocalThumbnails(mediaId),
    expired: (what, key) => {
      switch (what) {
        case "requester":
          return deps.tokenCache.expiredOwner(key);
        case "row":
          return deps.rows.expiredLocal(key);
        case "thumbnails":
          return deps.rows.expiredLocalThumbnails(key);
      }
    },
  };
}

/** `hit`'s answer when an expired cache entry stands between the request and a clean hit. */
interface Stale {
  /** The token's hash, undefined on a legacy (unauthenticated) path. */
  readonly tokenHash: string | undefined;
}

/** An answer head without Content-Length, as a flat `[name, value, ...]` list. */
interface Heads {
  readonly bytes: readonly string[];
  readonly accel: readonly string[];
}

interface Memo {
  /** Cached row → its download answer (without a file name segment). */
  readonly downloads: WeakMap<object, Prepared>;
  /** Cached thumbnail list → request key → its stored thumbnail's answer, or null (none). */
  readonly thumbnails: WeakMap<object, Map<number, Prepared | null>>;
  readonly prepare: (
    mediaId: string,
    urlCache: boolean,
    key: string,
    length: number,
    set: Readonly<Record<string, string>>,
    cors: Readonly<Record<string, string>>,
  ) => Prepared;
}

interface Answer {
  readonly prepared: Prepared;
  /** The bytes to send; undefined: the X-Accel-Redirect answer. */
  readonly bytes: Buffer | undefined;
}

/**
 * The Authorization header, read from `rawHeaders` (names in any case), or
 * undefined when there is none; null when a header makes the request
 * Fastify's: Range, If-None-Match, Transfer-Encoding, a Content-Length other
 * than 0, or more than one Authorization header. Reading `req.headers` instead
 * would build Node's header object for every hit (bench/README.md, "Fourth
 * session: where the fast path's CPU goes"); when the request goes on to
 * Fastify, Node builds it then, from the same raw list.
 */
export function authorizationOf(raw: readonly string[]): string | undefined | null {
  let authorization: string | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    switch (name.length) {
      case 5:
        if (name.toLowerCase() === "range") return null;
        break;
      case 13: {
        const lower = name.toLowerCase();
        if (lower === "authorization") {
          if (authorization !== undefined) return null;
          authorization = raw[i + 1] ?? "";
        } else if (lower === "if-none-match") return null;
        break;
      }
      case 14:
        if (name.toLowerCase() === "content-length" && raw[i + 1] !== "0") return null;
        break;
      case 17:
        if (name.toLowerCase() === "transfer-encoding") return null;
        break;
    }
  }
  return authorization;
}

/** A thumbnail request as a number (width and height are at most 10,000). */
function thumbnailKey(t: ThumbnailRequest): number {
  return (
    ((t.width * 10_001 + t.height) * 2 + (t.method === "crop" ? 1 : 0)) * 2 + (t.animated ? 1 : 0)
  );
}

/**
 * The answer when everything is a clean hit; a `Stale` when only expired
 * cache entries stand in the way (looked up in `lookups`; nothing counted);
 * undefined (nothing counted) otherwise.
 */
function hit(
  deps: FastPathDeps,
  request: FastPathRequest,
  rawHeaders: readonly string[],
  memo: Memo,
  cors: Readonly<Record<string, string>>,
  lookups: Lookups,
): Answer | Stale | undefined {
  const authorization = authorizationOf(rawHeaders);
  if (authorization === null) return undefined;
  if (request.serverName !== deps.serverName) return undefined;
  // Set when a look-up found an expired entry: the rest is still checked.
  let stale = false;
  let tokenHash: string | undefined;
  if (!request.legacy) {
    if (request.kind === "download" && deps.presignedRedirects) return undefined;
    // As accessTokenOf (auth.ts): a Bearer header, else the query parameter.
    const bearer = authorization === undefined ? null : BEARER.exec(authorization);
    const token = bearer ? bearer[1]! : request.queryToken;
    if (!token) return undefined;
    tokenHash = hashAccessToken(token);
    if (!lookups.requester(tokenHash)) {
      if (!lookups.expired?.("requester", tokenHash)) return undefined;
      stale = true;
    }
  }
  const { mediaId } = request;
  const row = lookups.row(mediaId);
  if (!row) {
    if (!lookups.expired?.("row", mediaId)) return undefined;
    stale = true;
  }
  if (request.kind === "thumbnail" && !lookups.thumbnails(mediaId)) {
    if (!lookups.expired?.("thumbnails", mediaId)) return undefined;
    stale = true;
  }
  if (stale) return { tokenHash };
  if (!row) return undefined;
  // As DownloadService.resolveLocal: quarantined, pending or (legacy) frozen media is the route's 404/wait.
  if (row.quarantinedBy !== null || row.mediaLength === null) return undefined;
  if (request.legacy && deps.authenticatedMedia && row.authenticated) return undefined;
  const { serving } = deps;
  const urlCache = row.urlCache !== null;
  let prepared: Prepared | undefined;
  if (request.kind === "download") {
    if (request.fileName === undefined) prepared = memo.downloads.get(row);
    if (prepared === undefined || prepared.mediaId !== mediaId || prepared.urlCache !== urlCache) {
      const headerSet = serving.headers.of(row.mediaType, request.fileName || row.uploadName);
      const key = localMediaKey(mediaId, row.urlCache);
      prepared = memo.prepare(mediaId, urlCache, key, row.mediaLength, headerSet, cors);
      if (request.fileName === undefined) memo.downloads.set(row, prepared);
    }
  } else {
    const list = lookups.thumbnails(mediaId);
    if (!list) return undefined;
    // As storedAnswer: a pre-generation under way is the route's to wait for.
    if (deps.thumbnails.isPregeneratingLocal(mediaId)) return undefined;
    const wanted = thumbnailKey(request.thumbnail!);
    let answers = memo.thumbnails.get(list);
    let known = answers?.get(wanted);
    if (known !== undefined && known !== null) {
      if (known.mediaId !== mediaId || known.urlCache !== urlCache) known = undefined;
    }
    if (known === undefined) {
      const found = deps.thumbnails.storedAnswer(mediaId, urlCache, list, request.thumbnail!);
      if (found !== undefined && found.kind !== "stored") return undefined;
      known = null;
      if (found !== undefined) {
        // As thumbnailFile (media-thumbnail-routes.ts): `thumbnail.<subtype>`.
        const extension = found.contentType.split("/")[1] ?? "bin";
        const headerSet = serving.headers.of(found.contentType, `thumbnail.${extension}`);
        known = memo.prepare(mediaId, urlCache, found.key, found.length, headerSet, cors);
      }
      if (!answers) {
        answers = new Map();
        memo.thumbnails.set(list, answers);
      }
      if (answers.size < MAX_PREPARED_PER_LIST) answers.set(wanted, known);
    }
    if (known === null) return undefined;
    prepared = known;
  }
  let bytes: Buffer | undefined;
  if (serving.accelLocation === null) {
    if (!serving.cache.accepts(prepared.length)) return undefined;
    // Last: a peek that finds the bytes counts the byte cache's hit.
    bytes = serving.cache.peek(prepared.key);
    if (!bytes) return undefined;
  }
  // The hits Fastify's answer would have counted (a re-read counted its own reads).
  if (lookups.counts) {
    if (!request.legacy) deps.tokenCache.stats.hits += 1;
    deps.rows.stats.hits += request.kind === "thumbnail" ? 2 : 1;
  }
  deps.accessTimes.local(mediaId);
  return { prepared, bytes };
}
