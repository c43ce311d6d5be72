/**
 * Downloads: the authenticated `GET /_matrix/client/v1/media/download/{serverName}/{mediaId}[/{fileName}]`
 * and the legacy unauthenticated `GET /_matrix/media/{v3,r0,v1}/download/...`.
 * Local media comes from the store; remote media from the remote cache, or
 * is fetched over federation and streamed while it is being cached.
 *
 * With `presignedRedirects` (S3's `presigned_redirects`) a client v1 download
 * of local media answers 307 to a short-lived presigned URL of the store
 * instead of proxying the bytes. Only after every check has passed: auth,
 * quarantine (resolveLocal refuses quarantined media) and never with the
 * admin quarantine bypass. Legacy and federation downloads are always proxied.
 *
 * Quarantined media is 404, or with `quarantine_placeholder.downloads` a
 * placeholder PNG (docs/trust-and-safety.md); federation downloads stay 404.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { MatrixError } from "../../domain/matrix-error.js";
import { parseMediaAddress } from "../../identifiers/media-id.js";
import type { AccessTimes } from "../../media/access-times.js";
import { clampTimeout, type DownloadService } from "../../media/download-service.js";
import { contentDisposition, contentTypeHeader } from "../../media/media-headers.js";
import type { QuarantinePlaceholders } from "../../media/quarantine-placeholder.js";
import { type DownloaderKey, downloaderKey } from "../../media/remote-download-limiter.js";
import type { RemoteMediaService } from "../../media/remote-media-service.js";
import { localMediaKey, remoteContentKey } from "../../storage/media-paths.js";
import type { Auth } from "../auth.js";
import {
  type MediaServing,
  type StoredMediaResponse,
  sendStoredMedia,
  setDownloadHeaders,
} from "../media-response.js";
import { sendPlaceholder } from "../quarantine-placeholder-reply.js";
import { booleanParam, firstParam, integerParam, type Query } from "../query-params.js";

export interface MediaDownloadRouteDeps {
  serverName: string;
  auth: Auth;
  downloads: DownloadService;
  remote: RemoteMediaService;
  /** The store, the byte cache and nginx's accel_redirect location. */
  serving: MediaServing;
  accessTimes: AccessTimes;
  /** Answers for quarantined media (`quarantine_placeholder`); off: the 404. */
  placeholders: QuarantinePlaceholders;
  /** Set to redirect client v1 local downloads to presigned URLs living `ttlMs`. */
  presignedRedirects?: { readonly ttlMs: number };
}

type Params = { serverName: string; mediaId: string; fileName?: string };
type Mode = {
  legacy: boolean;
  bypassQuarantine: boolean;
  allowRemote: boolean;
  /** Whose download rate limit a fetch is charged to: the user, else the client address. */
  downloader: DownloaderKey;
};

export function registerMediaDownloadRoutes(app: FastifyInstance, deps: MediaDownloadRouteDeps) {
  const clientV1 = async (request: FastifyRequest<{ Params: Params }>, reply: FastifyReply) => {
    const requester = await deps.auth.requireUser(request);
    // Synapse: exactly "true" asks for the bypass; a non-admin asking is refused
    // before anything else happens. Any other value is ignored.
    const bypass =
      firstParam(request.query as Query, "admin_unsafely_bypass_quarantine") === "true";
    if (bypass && !(await deps.auth.isAdmin(request, requester))) {
      throw new MatrixError("M_UNKNOWN", "Must be a server admin to bypass quarantine");
    }
    return serve(deps, request, reply, {
      legacy: false,
      bypassQuarantine: bypass,
      allowRemote: true,
      downloader: downloaderKey(requester.userId, request.ip),
    }).catch(placeholderOr(deps, reply));
  };
  const legacy = async (request: FastifyRequest<{ Params: Params }>, reply: FastifyReply) => {
    const allowRemote = booleanParam(request.query as Query, "allow_remote", true);
    return serve(deps, request, reply, {
      legacy: true,
      bypassQuarantine: false,
      allowRemote,
      // Legacy downloads carry no token: keyed by the client address.
      downloader: downloaderKey(undefined, request.ip),
    }).catch(placeholderOr(deps, reply));
  };

  for (const suffix of ["", "/:fileName"]) {
    app.get(`/_matrix/client/v1/media/download/:serverName/:mediaId${suffix}`, clientV1);
    for (const version of ["v3", "r0", "v1"]) {
      app.get(`/_matrix/media/${version}/download/:serverName/:mediaId${suffix}`, legacy);
    }
  }
}

/**
 * Quarantined media (`quarantine_placeholder.downloads`): the placeholder
 * instead of the 404; any other error goes on. The admin bypass never gets
 * here (nothing is quarantined for it).
 */
function placeholderOr(deps: MediaDownloadRouteDeps, reply: FastifyReply) {
  return (error: unknown) => {
    const placeholder = deps.placeholders.forDownload(error);
    if (!placeholder) throw error;
    return sendPlaceholder(reply, placeholder);
  };
}

async function serve(
  deps: MediaDownloadRouteDeps,
  request: FastifyRequest<{ Params: Params }>,
  reply: FastifyReply,
  mode: Mode,
) {
  const { serverName, mediaId } = parseMediaAddress(
    request.params.serverName,
    request.params.mediaId,
  );
  const timeoutMs = clampTimeout(integerParam(request.query as Query, "timeout_ms"));
  if (serverName !== deps.serverName)
    return serveRemote(deps, request, reply, serverName, mediaId, mode);
  const media = await deps.downloads.resolveLocal(mediaId, {
    ...mode,
    timeoutMs,
    requestPath: request.url.split("?", 1)[0]!,
  });
  deps.accessTimes.local(mediaId);
  const stored: StoredMediaResponse = {
    key: localMediaKey(mediaId, media.urlCache),
    length: media.mediaLength,
    mediaType: media.mediaType,
    fileName: request.params.fileName || media.uploadName,
    // Quarantined bytes (the admin bypass) are streamed, never kept in memory.
    owner: media.quarantinedBy === null ? { kind: "local", mediaId } : null,
    bypass: mode.bypassQuarantine,
  };
  const redirect = !mode.legacy && !mode.bypassQuarantine && media.quarantinedBy === null;
  const store = deps.serving.store;
  if (redirect && deps.presignedRedirects && store.presignedUrl) {
    // Ranges and If-None-Match are for the store to answer after the redirect.
    const url = await store.presignedUrl(
      stored.key,
      Math.ceil(deps.presignedRedirects.ttlMs / 1000),
      {
        contentType: contentTypeHeader(stored.mediaType),
        contentDisposition: contentDisposition(stored.mediaType, stored.fileName),
      },
    );
    // The URL is a bearer credential for the bytes: never cache the redirect.
    return reply.code(307).headers({ location: url, "cache-control": "no-store" }).send();
  }
  return sendStoredMedia(request, reply, deps.serving, stored);
}

async function serveRemote(
  deps: MediaDownloadRouteDeps,
  request: FastifyRequest<{ Params: Params }>,
  reply: FastifyReply,
  origin: string,
  mediaId: string,
  mode: Mode,
) {
  const source = await deps.remote.open(origin, mediaId, mode);
  if (source.kind === "live") {
    // First request for uncached media: bytes stream while they are cached.
    setDownloadHeaders(reply, source.contentType, request.params.fileName || source.uploadName);
    return reply.send(source.bytes);
  }
  const media = source.media;
  deps.accessTimes.remote(origin, mediaId);
  return sendStoredMedia(request, reply, deps.serving, {
    key: remoteContentKey(origin, media.filesystemId),
    length: media.mediaLength ?? 0,
    mediaType: media.mediaType,
    fileName: request.params.fileName || media.uploadName,
    owner:
      media.mediaLength === null || media.quarantinedBy !== null
        ? null
        : { kind: "remote", origin, mediaId },
    bypass: mode.bypassQuarantine,
  });
}
