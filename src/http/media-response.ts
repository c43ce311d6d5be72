/**
 * Sending stored media bytes with the download headers of the references
 * (§2 / §6.3): type, disposition, security and cache headers, ETag/304 and
 * single byte ranges (206/416). Shared by local and cached remote media.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { MatrixError } from "../domain/matrix-error.js";
import {
  contentDisposition,
  contentTypeHeader,
  downloadSecurityHeaders,
  MEDIA_NOSNIFF,
} from "../media/media-headers.js";
import type { BlobStore } from "../storage/blob-store.js";
import { parseByteRange } from "./byte-range.js";

/** Every media path: client v1, the legacy `/_matrix/media/*` and federation media. */
const MEDIA_PATH = /^\/_matrix\/(media\/|client\/v1\/media\/|federation\/v1\/media\/)/;

/**
 * Adds `X-Content-Type-Options: nosniff` to every response on a media path —
 * downloads, thumbnails, federation multipart answers, redirects and errors
 * alike — in one place, whichever route file answers.
 */
export function addMediaNosniff(app: FastifyInstance): void {
  app.addHook("onSend", async (request, reply, payload) => {
    if (MEDIA_PATH.test(request.url)) reply.headers(MEDIA_NOSNIFF);
    return payload;
  });
}

/** Synapse's constant ETag: media never changes, so a CDN may revalidate against it. */
const ETAG = "1";

export interface StoredMediaResponse {
  readonly key: string;
  readonly length: number;
  readonly mediaType: string | null;
  readonly fileName: string | null;
}

/** Sets the headers every download answer carries. */
export function setDownloadHeaders(
  reply: FastifyReply,
  mediaType: string | null,
  fileName: string | null,
) {
  reply.headers({
    ...downloadSecurityHeaders(),
    "content-type": contentTypeHeader(mediaType),
    "content-disposition": contentDisposition(mediaType, fileName),
  });
}

/** Answers with stored bytes: 304 on a matching If-None-Match, 206/416 for ranges. */
export async function sendStoredMedia(
  request: FastifyRequest,
  reply: FastifyReply,
  store: BlobStore,
  media: StoredMediaResponse,
) {
  setDownloadHeaders(reply, media.mediaType, media.fileName);
  reply.headers({ etag: ETAG, "accept-ranges": "bytes" });
  if (matchesEtag(request.headers["if-none-match"])) return reply.code(304).send();
  const range = parseByteRange(request.headers.range, media.length);
  if (range.kind === "unsatisfiable") {
    reply.header("content-range", `bytes */${media.length}`);
    throw new MatrixError("M_UNKNOWN", "Requested range not satisfiable", 416);
  }
  // A missing blob throws BlobNotFoundError, which the HTTP error funnel
  // answers with 404 M_NOT_FOUND for every route (http-server.ts).
  if (range.kind === "partial") {
    const { start, end } = range.range;
    const stream = await store.read(media.key, range.range);
    reply.code(206);
    reply.header("content-range", `bytes ${start}-${end}/${media.length}`);
    reply.header("content-length", end - start + 1);
    return reply.send(stream);
  }
  const stream = await store.read(media.key);
  reply.header("content-length", media.length);
  return reply.send(stream);
}

function matchesEtag(header: string | undefined): boolean {
  if (!header) return false;
  return header.split(",").some((tag) => ["1", '"1"', "*"].includes(tag.trim()));
}
