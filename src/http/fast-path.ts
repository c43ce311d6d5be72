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
import type { AccountService } from "../accounts/account-service.js";
import type { MediaMetadataCache } from "../cache/media-metadata-cache.js";
import type { TokenCache } from "../cache/token-cache.js";
import type { RequestLogWriter } from "../logging/request-log-line.js";
import type { AccessTimes } from "../media/access-times.js";
import type { ThumbnailService } from "../media/thumbnail-service.js";
import { localMediaKey } from "../storage/media-paths.js";
import { type FastPathRequest, parseFastPathRequest } from "./fast-path-request.js";
import { registerFastPathMetrics } from "./http-metrics.js";
import type { MediaServing } from "./media-response.js";

/** What the fast path needs of the services: the caches' peeks and the same decisions. */
export interface FastPathDeps {
  readonly serverName: string;
  readonly accounts: Pick<AccountService, "cachedRequester">;
  readonly tokenCache: Pick<TokenCache, "stats">;
  readonly rows: Pick<MediaMetadataCache, "cachedLocal" | "cachedLocalThumbnails" | "stats">;
  readonly thumbnails: Pick<ThumbnailService, "storedAnswer">;
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
}

/** Answers `req` and returns true, or returns false having written nothing. */
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

  return (req, res, core) => {
    if (req.method !== "GET") return false;
    const url = req.url ?? "";
    const request = parseFastPathRequest(url);
    if (!request) return false;
    const start = performance.now();
    const answer = hit(deps, request, req);
    counted(request.kind, answer ? "answered" : "passed");
    if (!answer) return false;
    const head = headOf(answer.headers, core.corsHeaders);
    const status = 200;
    if (answer.accel !== undefined) {
      res.writeHead(status, [
        ...head.accel,
        "x-accel-redirect",
        answer.accel,
        "content-length",
        "0",
      ]);
      res.end();
    } else {
      const length = String(answer.bytes!.length);
      res.writeHead(status, [...head.bytes, "content-length", length]);
      res.end(answer.bytes);
    }
    const ms = performance.now() - start;
    core.record("GET", request.route, status, ms / 1000);
    core.log({
      id: core.requestId(),
      method: "GET",
      url,
      remoteAddress: req.socket.remoteAddress,
      statusCode: status,
      responseTime: ms,
    });
    return true;
  };
}

/** An answer head without Content-Length, as a flat `[name, value, ...]` list. */
interface Heads {
  readonly bytes: readonly string[];
  readonly accel: readonly string[];
}

interface Answer {
  readonly headers: Readonly<Record<string, string>>;
  /** The X-Accel-Redirect target; else `bytes` are sent. */
  readonly accel?: string;
  readonly bytes?: Buffer;
}

/** The answer when everything is a clean hit; undefined (nothing counted) otherwise. */
function hit(
  deps: FastPathDeps,
  request: FastPathRequest,
  req: IncomingMessage,
): Answer | undefined {
  const headers = req.headers;
  if (headers.range !== undefined || headers["if-none-match"] !== undefined) return undefined;
  if (headers["content-length"] !== undefined && headers["content-length"] !== "0")
    return undefined;
  if (headers["transfer-encoding"] !== undefined) return undefined;
  if (request.serverName !== deps.serverName) return undefined;
  if (!request.legacy) {
    if (request.kind === "download" && deps.presignedRedirects) return undefined;
    // As accessTokenOf (auth.ts): a Bearer header, else the query parameter.
    const bearer = headers.authorization === undefined ? null : BEARER.exec(headers.authorization);
    const token = bearer ? bearer[1]! : request.queryToken;
    if (!token || !deps.accounts.cachedRequester(hashAccessToken(token))) return undefined;
  }
  const row = deps.rows.cachedLocal(request.mediaId);
  // As DownloadService.resolveLocal: quarantined, pending or (legacy) frozen media is the route's 404/wait.
  if (!row || row.quarantinedBy !== null || row.mediaLength === null) return undefined;
  if (request.legacy && deps.authenticatedMedia && row.authenticated) return undefined;
  const { serving } = deps;
  let key: string;
  let length: number;
  let headerSet: Readonly<Record<string, string>>;
  if (request.kind === "download") {
    key = localMediaKey(request.mediaId, row.urlCache);
    length = row.mediaLength;
    headerSet = serving.headers.of(row.mediaType, request.fileName || row.uploadName);
  } else {
    const list = deps.rows.cachedLocalThumbnails(request.mediaId);
    if (!list) return undefined;
    const found = deps.thumbnails.storedAnswer(
      request.mediaId,
      row.urlCache !== null,
      list,
      request.thumbnail!,
    );
    if (!found || found.kind !== "stored") return undefined;
    key = found.key;
    length = found.length;
    // As thumbnailFile (media-thumbnail-routes.ts): `thumbnail.<subtype>`.
    const extension = found.contentType.split("/")[1] ?? "bin";
    headerSet = serving.headers.of(found.contentType, `thumbnail.${extension}`);
  }
  let answer: Answer;
  if (serving.accelLocation !== null) {
    answer = { headers: headerSet, accel: serving.accelLocation + key };
  } else {
    if (!serving.cache.accepts(length)) return undefined;
    // Last: a peek that finds the bytes counts the byte cache's hit.
    const bytes = serving.cache.peek(key);
    if (!bytes) return undefined;
    answer = { headers: headerSet, bytes };
  }
  // The hits Fastify's answer would have counted.
  if (!request.legacy) deps.tokenCache.stats.hits += 1;
  deps.rows.stats.hits += request.kind === "thumbnail" ? 2 : 1;
  deps.accessTimes.local(request.mediaId);
  return answer;
}
