/**
 * Serving our media to other servers (Matrix spec, server-server "Content
 * Repository"): `GET /_matrix/federation/v1/media/download/{mediaId}` and
 * `/thumbnail/{mediaId}`, X-Matrix authenticated, answered with the
 * two-part multipart/mixed body. Thumbnails come from the same code and the
 * same stored files as the client endpoint, so they are byte-identical.
 * Quarantined or unknown media is 404 M_NOT_FOUND.
 */
import type { FastifyInstance, FastifyReply } from "fastify";
import type { FederationAuth } from "../../federation/federation-auth.js";
import { multipartBody, newBoundary } from "../../federation/multipart.js";
import { parseMediaAddress } from "../../identifiers/media-id.js";
import { clampTimeout } from "../../media/download-service.js";
import { contentDisposition, contentTypeHeader } from "../../media/media-headers.js";
import { downloaderKey } from "../../media/remote-download-limiter.js";
import type { BlobStore } from "../../storage/blob-store.js";
import { localMediaKey } from "../../storage/media-paths.js";
import { requireFederationOrigin } from "../federation-auth-hook.js";
import { integerParam, type Query } from "../query-params.js";
import {
  findThumbnail,
  type MediaThumbnailRouteDeps,
  thumbnailFile,
  thumbnailRequestOf,
} from "./media-thumbnail-routes.js";

export interface FederationMediaRouteDeps
  extends Pick<
    MediaThumbnailRouteDeps,
    "serverName" | "downloads" | "remote" | "thumbnails" | "accessTimes"
  > {
  federationAuth: FederationAuth;
  store: BlobStore;
}

type Params = { Params: { mediaId: string } };

export function registerFederationMediaRoutes(
  app: FastifyInstance,
  deps: FederationMediaRouteDeps,
) {
  app.get<Params>("/_matrix/federation/v1/media/download/:mediaId", async (request, reply) => {
    await requireFederationOrigin(deps.federationAuth, request);
    const { mediaId } = parseMediaAddress(deps.serverName, request.params.mediaId);
    const media = await deps.downloads.resolveLocal(mediaId, {
      legacy: false,
      bypassQuarantine: false,
      timeoutMs: clampTimeout(integerParam(request.query as Query, "timeout_ms")),
      requestPath: request.url.split("?", 1)[0]!,
    });
    deps.accessTimes.local(mediaId);
    return sendMultipart(reply, {
      contentType: contentTypeHeader(media.mediaType),
      contentDisposition: contentDisposition(media.mediaType, media.uploadName),
      key: localMediaKey(mediaId, media.urlCache),
      length: media.mediaLength,
      store: deps.store,
    });
  });

  app.get<Params>("/_matrix/federation/v1/media/thumbnail/:mediaId", async (request, reply) => {
    await requireFederationOrigin(deps.federationAuth, request);
    const query = request.query as Query;
    const { mediaId } = parseMediaAddress(deps.serverName, request.params.mediaId);
    const found = await findThumbnail(deps, deps.serverName, mediaId, thumbnailRequestOf(query), {
      legacy: false,
      allowRemote: false,
      // Never used: only local media is served over federation.
      downloader: downloaderKey(undefined, request.ip),
      timeoutMs: clampTimeout(integerParam(query, "timeout_ms")),
      requestPath: request.url.split("?", 1)[0]!,
    });
    const { fileName, length } = thumbnailFile(found);
    const type = found.answer.contentType;
    return sendMultipart(reply, {
      contentType: contentTypeHeader(type),
      contentDisposition: contentDisposition(type, fileName),
      key: found.answer.key,
      length,
      store: deps.store,
    });
  });
}

async function sendMultipart(
  reply: FastifyReply,
  part: {
    contentType: string;
    contentDisposition: string;
    key: string;
    length: number;
    store: BlobStore;
  },
) {
  const boundary = newBoundary();
  const { body, length } = multipartBody(boundary, {
    contentType: part.contentType,
    contentDisposition: part.contentDisposition,
    bytes: await part.store.read(part.key),
    length: part.length,
  });
  reply.header("content-type", `multipart/mixed; boundary=${boundary}`);
  if (length !== undefined) reply.header("content-length", length);
  return reply.send(body);
}
