/**
 * Thumbnails: the authenticated `GET /_matrix/client/v1/media/thumbnail/{serverName}/{mediaId}`
 * and the legacy `GET /_matrix/media/{v3,r0,v1}/thumbnail/...`. Auth comes
 * before parameters (Complement). Quarantine, pending uploads and the freeze
 * behave as for downloads; there is no admin bypass here. Remote media is
 * fetched into the cache first and thumbnailed here. Quarantined media is
 * 404, or with `quarantine_placeholder.thumbnails` a placeholder PNG of the
 * requested size (docs/trust-and-safety.md); the federation thumbnail
 * route, which shares `findThumbnail`, stays 404.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { MatrixError } from "../../domain/matrix-error.js";
import { parseMediaAddress } from "../../identifiers/media-id.js";
import type { AccessTimes } from "../../media/access-times.js";
import { clampTimeout, type DownloadService } from "../../media/download-service.js";
import type { QuarantinePlaceholders } from "../../media/quarantine-placeholder.js";
import { type DownloaderKey, downloaderKey } from "../../media/remote-download-limiter.js";
import type { RemoteMediaService } from "../../media/remote-media-service.js";
import type { ThumbnailAnswer, ThumbnailService } from "../../media/thumbnail-service.js";
import type { MediaOwner } from "../../storage/media-byte-cache.js";
import type { ThumbnailRequest } from "../../thumbnails/thumbnailer.js";
import type { Auth } from "../auth.js";
import { type MediaServing, sendStoredMedia } from "../media-response.js";
import { sendPlaceholder } from "../quarantine-placeholder-reply.js";
import {
  booleanParam,
  enumParam,
  integerParam,
  type Query,
  requiredIntegerParam,
} from "../query-params.js";

export interface MediaThumbnailRouteDeps {
  serverName: string;
  auth: Auth;
  downloads: DownloadService;
  remote: RemoteMediaService;
  thumbnails: ThumbnailService;
  /** The store, the byte cache and nginx's accel_redirect location. */
  serving: MediaServing;
  accessTimes: AccessTimes;
  /** Answers for quarantined media (`quarantine_placeholder`); off: the 404. */
  placeholders: QuarantinePlaceholders;
}

type Params = { serverName: string; mediaId: string };

/** A thumbnail to send, with what the original needs when it is sent as it is. */
export interface ThumbnailToSend {
  readonly answer: ThumbnailAnswer;
  readonly uploadName: string | null;
  /** The original's length (0 when a remote origin never said). */
  readonly length: number;
  /** The media the bytes belong to; null when their length is not known. */
  readonly owner: MediaOwner | null;
}

export function registerMediaThumbnailRoutes(app: FastifyInstance, deps: MediaThumbnailRouteDeps) {
  const route =
    (legacy: boolean) =>
    async (request: FastifyRequest<{ Params: Params }>, reply: FastifyReply) => {
      const query = request.query as Query;
      // Legacy: no token, `allow_remote` checked first; v1: the token first.
      const requester = legacy ? undefined : await deps.auth.requireUser(request);
      const allowRemote = legacy ? booleanParam(query, "allow_remote", true) : true;
      const { serverName, mediaId } = parseMediaAddress(
        request.params.serverName,
        request.params.mediaId,
      );
      const wanted = thumbnailRequestOf(query);
      let found: ThumbnailToSend;
      try {
        found = await findThumbnail(deps, serverName, mediaId, wanted, {
          legacy,
          allowRemote,
          // Whose download rate limit a fetch is charged to (docs/media.md "Rate limits").
          downloader: downloaderKey(requester?.userId, request.ip),
          timeoutMs: clampTimeout(integerParam(query, "timeout_ms")),
          requestPath: request.url.split("?", 1)[0]!,
        });
      } catch (error) {
        // Quarantined, with `quarantine_placeholder.thumbnails`: a placeholder.
        const placeholder = deps.placeholders.forThumbnail(error, wanted);
        if (!placeholder) throw error;
        return sendPlaceholder(reply, placeholder);
      }
      const { fileName, length } = thumbnailFile(found);
      return sendStoredMedia(request, reply, deps.serving, {
        key: found.answer.key,
        length,
        mediaType: found.answer.contentType,
        fileName,
        owner: found.owner,
      });
    };
  app.get("/_matrix/client/v1/media/thumbnail/:serverName/:mediaId", route(false));
  for (const version of ["v3", "r0", "v1"]) {
    app.get(`/_matrix/media/${version}/thumbnail/:serverName/:mediaId`, route(true));
  }
}

/** The thumbnail query parameters (Matrix spec: width and height required, method crop|scale). */
export function thumbnailRequestOf(query: Query): ThumbnailRequest {
  const width = requiredIntegerParam(query, "width");
  const height = requiredIntegerParam(query, "height");
  if (width === 0 || height === 0) {
    throw new MatrixError("M_INVALID_PARAM", "width and height must be at least 1");
  }
  const method = enumParam(query, "method", ["crop", "scale"] as const) ?? "scale";
  const animated = booleanParam(query, "animated", false);
  return { width: Math.min(width, 10_000), height: Math.min(height, 10_000), method, animated };
}

/** Resolves the media (local or remote) and its thumbnail for `wanted`. */
export async function findThumbnail(
  deps: Pick<
    MediaThumbnailRouteDeps,
    "serverName" | "downloads" | "remote" | "thumbnails" | "accessTimes"
  >,
  serverName: string,
  mediaId: string,
  wanted: ThumbnailRequest,
  options: {
    legacy: boolean;
    allowRemote: boolean;
    downloader: DownloaderKey;
    timeoutMs: number;
    requestPath: string;
  },
): Promise<ThumbnailToSend> {
  if (serverName !== deps.serverName) {
    const source = await deps.remote.open(serverName, mediaId, {
      ...options,
      bypassQuarantine: false,
    });
    const media =
      source.kind === "cached"
        ? source.media
        : await deps.remote.ensureCached(serverName, mediaId, source);
    const subject = deps.thumbnails.remote(
      serverName,
      mediaId,
      media.filesystemId,
      media.mediaType,
    );
    const answer = await deps.thumbnails.thumbnail(subject, wanted);
    deps.accessTimes.remote(serverName, mediaId);
    const lengthKnown = answer.kind === "stored" || media.mediaLength !== null;
    return {
      answer,
      uploadName: media.uploadName,
      length: media.mediaLength ?? 0,
      owner: lengthKnown ? { kind: "remote", origin: serverName, mediaId } : null,
    };
  }
  const media = await deps.downloads.resolveLocal(mediaId, { ...options, bypassQuarantine: false });
  const answer = await deps.thumbnails.thumbnail(
    deps.thumbnails.local(mediaId, media.urlCache !== null, media.mediaType),
    wanted,
  );
  deps.accessTimes.local(mediaId);
  return {
    answer,
    uploadName: media.uploadName,
    length: media.mediaLength,
    owner: { kind: "local", mediaId },
  };
}

/**
 * The file name and length a thumbnail answer is sent with. Its type is the
 * one the image bytes have (for the original too: an upload claiming
 * `text/html` whose bytes are a GIF is sent as `image/gif`); the disposition
 * is `inline` only for types on the inline allow-list, so a stored row with
 * any other type is an attachment.
 */
export function thumbnailFile(found: ThumbnailToSend): { fileName: string | null; length: number } {
  const { answer } = found;
  if (answer.kind === "original") return { fileName: found.uploadName, length: found.length };
  const extension = answer.contentType.split("/")[1] ?? "bin";
  return { fileName: `thumbnail.${extension}`, length: answer.length };
}
