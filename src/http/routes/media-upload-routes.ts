/**
 * Upload endpoints: `POST /_matrix/media/{v3,r0,v1}/upload`,
 * `POST /_matrix/media/v1/create` and `PUT /_matrix/media/{v3,r0,v1}/upload/{serverName}/{mediaId}`.
 * Upload bodies are not parsed: they stream from the socket to the store.
 * Guests may not upload or create (403 M_GUEST_ACCESS_FORBIDDEN, as Synapse).
 */
import type { FastifyInstance, FastifyRequest } from "fastify";
import { parseMediaAddress } from "../../identifiers/media-id.js";
import type { MediaCreateRateLimit } from "../../media/media-create-rate-limit.js";
import type { UploadRequest, UploadService } from "../../media/upload-service.js";
import type { Auth } from "../auth.js";
import { strictQueryParam } from "../raw-query.js";

export interface MediaUploadRouteDeps {
  auth: Auth;
  uploads: UploadService;
  /** `rc_media_create`, checked before the pending-uploads limit (Synapse's order). */
  createRate: MediaCreateRateLimit;
}

const VERSIONS = ["v3", "r0", "v1"] as const;

export function registerMediaUploadRoutes(app: FastifyInstance, deps: MediaUploadRouteDeps): void {
  app.post("/_matrix/media/v1/create", async (request) => {
    const requester = await deps.auth.requireNonGuest(request);
    deps.createRate.check(requester.userId);
    const created = await deps.uploads.create(requester.userId);
    return { content_uri: created.contentUri, unused_expires_at: created.unusedExpiresAt };
  });

  app.register(async (raw) => {
    // Leave every body unread: the handlers stream `request.raw` themselves.
    raw.removeAllContentTypeParsers();
    raw.addContentTypeParser("*", (_request, _payload, done) => done(null));

    for (const version of VERSIONS) {
      raw.post(`/_matrix/media/${version}/upload`, async (request) => {
        const requester = await deps.auth.requireNonGuest(request);
        const uri = await deps.uploads.upload(uploadRequest(request, requester.userId));
        return { content_uri: uri };
      });

      raw.put<{ Params: { serverName: string; mediaId: string } }>(
        `/_matrix/media/${version}/upload/:serverName/:mediaId`,
        async (request) => {
          const requester = await deps.auth.requireNonGuest(request);
          const { serverName, mediaId } = parseMediaAddress(
            request.params.serverName,
            request.params.mediaId,
          );
          await deps.uploads.uploadTo(
            serverName,
            mediaId,
            uploadRequest(request, requester.userId),
          );
          return {};
        },
      );
    }
  });
}

function uploadRequest(request: FastifyRequest, userId: string): UploadRequest {
  const length = request.headers["content-length"];
  return {
    userId,
    body: request.raw,
    contentType: request.headers["content-type"],
    contentLength: length === undefined ? undefined : Number(length),
    uploadName: strictQueryParam(request.url, "filename") || null,
  };
}
