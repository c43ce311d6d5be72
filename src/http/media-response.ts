/**
 * Sending stored media bytes with the download headers of the references
 * (§2 / §6.3): type, disposition, security and cache headers, ETag/304 and
 * single byte ranges (206/416). Shared by local and cached remote media,
 * downloads and thumbnails.
 *
 * The serving fast path (docs/deployment.md, "Serving fast path"): callers
 * come here only once every check (auth, quarantine, the metadata lookup) has
 * passed, and this replaces only the store read:
 * - the header set of a (type, file name) pair is built once and reused;
 * - small blobs come from the media byte cache (no file open/stat/close);
 * - with `media_store.accel_redirect`, nginx sends the file: the answer is
 *   the headers plus `X-Accel-Redirect`, with an empty body — except for the
 *   admin quarantine bypass, which always streams from mxcd.
 */
import type { OutgoingHttpHeaders } from "node:http";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { LRUCache } from "lru-cache";
import { MatrixError } from "../domain/matrix-error.js";
import {
  contentDisposition,
  contentTypeHeader,
  downloadSecurityHeaders,
  MEDIA_NOSNIFF,
} from "../media/media-headers.js";
import type { BlobStore, ByteRange } from "../storage/blob-store.js";
import type { MediaByteCache, MediaOwner } from "../storage/media-byte-cache.js";
import { parseByteRange } from "./byte-range.js";

/** Every media path: client v1, the legacy `/_matrix/media/*` and federation media. */
const MEDIA_PATH = /^\/_matrix\/(media\/|client\/v1\/media\/|federation\/v1\/media\/)/;

const NOSNIFF_NAME = "x-content-type-options";
const NOSNIFF_VALUE = MEDIA_NOSNIFF["X-Content-Type-Options"]!;

/**
 * Adds `X-Content-Type-Options: nosniff` to every response on a media path —
 * downloads, thumbnails, federation multipart answers, redirects and errors
 * alike — whichever route file answers. Routes on a media path get a
 * route-level hook when they are registered (no per-request URL test); the
 * answers of no route (404/405 of unknown paths) call `addNosniffIfMedia`.
 */
export function addMediaNosniff(app: FastifyInstance): void {
  app.addHook("onRoute", (route) => {
    if (!MEDIA_PATH.test(route.url)) return;
    const hooks = route.onRequest;
    const list = hooks === undefined ? [] : Array.isArray(hooks) ? hooks : [hooks];
    route.onRequest = [...list, setNosniff];
  });
}

/** A set-up header survives errors: the error funnel only adds to the reply's headers. */
function setNosniff(_request: FastifyRequest, reply: FastifyReply, done: () => void): void {
  reply.header(NOSNIFF_NAME, NOSNIFF_VALUE);
  done();
}

/** For answers that no route gives (unknown paths, framework errors): nosniff on media paths. */
export function addNosniffIfMedia(reply: FastifyReply, url: string): void {
  if (MEDIA_PATH.test(url)) reply.header(NOSNIFF_NAME, NOSNIFF_VALUE);
}

/** Synapse's constant ETag: media never changes, so a CDN may revalidate against it. */
const ETAG = "1";

/** How stored bytes are sent: the store, the byte cache and nginx's internal location. */
export interface MediaServing {
  readonly store: BlobStore;
  readonly cache: MediaByteCache;
  /** `media_store.accel_redirect.location` (ends in `/`), or null when off. */
  readonly accelLocation: string | null;
  /** The header sets already built. */
  readonly headers: DownloadHeaderSets;
}

export interface StoredMediaResponse {
  readonly key: string;
  readonly length: number;
  readonly mediaType: string | null;
  readonly fileName: string | null;
  /** The media the bytes belong to; null when `length` is not known (never cached). */
  readonly owner: MediaOwner | null;
  /** The admin quarantine bypass: streamed by mxcd, never redirected to nginx. */
  readonly bypass?: boolean;
}

/** The security and cache headers of every download, lowercased as Fastify keeps them. */
const SECURITY_HEADERS: Readonly<Record<string, string>> = Object.freeze(
  Object.fromEntries(
    Object.entries(downloadSecurityHeaders()).map(([name, value]) => [name.toLowerCase(), value]),
  ),
);

/** Type and disposition headers of a download (the rest of the set is fixed). */
function describedBy(mediaType: string | null, fileName: string | null) {
  return {
    ...SECURITY_HEADERS,
    "content-type": contentTypeHeader(mediaType),
    "content-disposition": contentDisposition(mediaType, fileName),
  };
}

/**
 * The headers every download answer carries — security and cache headers,
 * type, disposition, ETag and Accept-Ranges — built once per (type, file
 * name) and shared (frozen). Bounded: the 4,096 pairs used last.
 */
export class DownloadHeaderSets {
  readonly #sets = new LRUCache<string, Readonly<Record<string, string>>>({ max: 4096 });

  of(mediaType: string | null, fileName: string | null): Readonly<Record<string, string>> {
    // A file name may hold any character: JSON keys the pair unambiguously.
    const key = JSON.stringify([mediaType, fileName]);
    let headers = this.#sets.get(key);
    if (!headers) {
      headers = Object.freeze({
        ...describedBy(mediaType, fileName),
        etag: ETAG,
        "accept-ranges": "bytes",
      });
      this.#sets.set(key, headers);
    }
    return headers;
  }
}

/** Sets the headers of a download streamed as it arrives (no ETag, no ranges). */
export function setDownloadHeaders(
  reply: FastifyReply,
  mediaType: string | null,
  fileName: string | null,
) {
  reply.headers(describedBy(mediaType, fileName));
}

/** Answers with stored bytes: 304 on a matching If-None-Match, 206/416 for ranges. */
export async function sendStoredMedia(
  request: FastifyRequest,
  reply: FastifyReply,
  serving: MediaServing,
  media: StoredMediaResponse,
) {
  reply.headers(serving.headers.of(media.mediaType, media.fileName));
  const ifNoneMatch = request.headers["if-none-match"];
  if (ifNoneMatch !== undefined && matchesEtag(ifNoneMatch)) return reply.code(304).send();
  const range = parseByteRange(request.headers.range, media.length);
  if (range.kind === "unsatisfiable") {
    reply.header("content-range", `bytes */${media.length}`);
    throw new MatrixError("M_UNKNOWN", "Requested range not satisfiable", 416);
  }
  if (serving.accelLocation !== null && !media.bypass) {
    // nginx answers the range itself from the internal location. On a 200
    // it adds its own Accept-Ranges and would keep ours too (two values); on
    // a 206 it adds none and keeps ours.
    if (range.kind === "full") reply.removeHeader("accept-ranges");
    return reply.header("x-accel-redirect", serving.accelLocation + media.key).send();
  }
  const bytes = await cachedBytes(serving, media, range.kind === "full");
  const part = range.kind === "partial" ? range.range : undefined;
  if (bytes === undefined && serving.store.sendTo && request.method === "GET") {
    return sendFromStore(reply, serving.store.sendTo.bind(serving.store), media, part);
  }
  // A missing blob throws BlobNotFoundError, which the HTTP error funnel
  // answers with 404 M_NOT_FOUND for every route (http-server.ts).
  if (part) {
    reply.code(206);
    reply.header("content-range", `bytes ${part.start}-${part.end}/${media.length}`);
    reply.header("content-length", part.end - part.start + 1);
    return reply.send(
      bytes ? bytes.subarray(part.start, part.end + 1) : await serving.store.read(media.key, part),
    );
  }
  reply.header("content-length", media.length);
  return reply.send(bytes ?? (await serving.store.read(media.key)));
}

/**
 * Bytes the byte cache does not hold, sent by the store itself (filesystem:
 * two reused buffers, bench/README.md "Large downloads"). The reply is
 * hijacked only once the file is open, so a missing blob is still the error
 * funnel's 404; the onResponse hooks (metrics, the request line) still run
 * when the answer finishes. Content-Length is the row's length (or the
 * range's), as for a stream: a file that holds fewer bytes cuts the answer.
 */
async function sendFromStore(
  reply: FastifyReply,
  sendTo: NonNullable<BlobStore["sendTo"]>,
  media: StoredMediaResponse,
  part: ByteRange | undefined,
): Promise<FastifyReply> {
  await sendTo(media.key, part, () => {
    reply.hijack();
    if (part) {
      reply.header("content-range", `bytes ${part.start}-${part.end}/${media.length}`);
      reply.header("content-length", part.end - part.start + 1);
    } else reply.header("content-length", media.length);
    const res = reply.raw;
    res.writeHead(part ? 206 : 200, reply.getHeaders() as OutgoingHttpHeaders);
    return res;
  });
  return reply;
}

/**
 * The whole blob from the byte cache when it is small enough: a hit, or a
 * miss filled by reading it whole (only for a full read: a range is cut from
 * a cached blob but never fills one). Undefined: stream from the store.
 */
function cachedBytes(
  serving: MediaServing,
  media: StoredMediaResponse,
  full: boolean,
): Promise<Buffer | undefined> | undefined {
  const { cache } = serving;
  if (media.owner === null || !cache.accepts(media.length)) return undefined;
  if (!full) return Promise.resolve(cache.peek(media.key));
  return cache.get(media.key, media.owner, media.length, () => serving.store.read(media.key));
}

function matchesEtag(header: string): boolean {
  if (header === "1" || header === '"1"' || header === "*") return true;
  return header.split(",").some((tag) => {
    const trimmed = tag.trim();
    return trimmed === "1" || trimmed === '"1"' || trimmed === "*";
  });
}
