/**
 * The quarantine, protection and media-info part of Synapse's media admin
 * API, under `/_synapse/admin/v1` (reference A1, A5–A10):
 * query media by id, quarantine and unquarantine by id, by room (and the
 * legacy `/quarantine_media/{roomId}`) and by user, protect and unprotect.
 * Counts are real transitions (docs/compatibility.md).
 */
import type { FastifyInstance } from "fastify";
import { MatrixError } from "../../domain/matrix-error.js";
import type { MediaHashes } from "../../domain/media-hashes.js";
import type { RoomMediaCaller } from "../../homeserver/room-media-source.js";
import { parseMediaAddress } from "../../identifiers/media-id.js";
import { isValidRoomId } from "../../identifiers/room-id.js";
import { parseUserId } from "../../identifiers/user-id.js";
import type { MediaAdminService, MediaInfo } from "../../media/media-admin-service.js";
import type { QuarantineService } from "../../media/quarantine-service.js";
import { type Auth, accessTokenOf } from "../auth.js";

export interface MediaQuarantineRouteDeps {
  serverName: string;
  auth: Auth;
  quarantine: QuarantineService;
  admin: MediaAdminService;
  /**
   * Room quarantine: the index (QuarantineService) standalone, the index and
   * the homeserver's list (RoomMediaSource) attached.
   */
  rooms: {
    quarantineRoom(roomId: string, by: string, caller: RoomMediaCaller): Promise<number>;
  };
}

const ADMIN = "/_synapse/admin/v1";
type MediaParams = { Params: { serverName: string; mediaId: string } };

export function registerMediaQuarantineRoutes(
  app: FastifyInstance,
  deps: MediaQuarantineRouteDeps,
) {
  const { auth, quarantine } = deps;

  app.get<MediaParams>(`${ADMIN}/media/:serverName/:mediaId`, async (request) => {
    await auth.requireAdmin(request);
    const { serverName, mediaId } = parseMediaAddress(
      request.params.serverName,
      request.params.mediaId,
    );
    const found = await deps.admin.mediaInfo(serverName, mediaId);
    if (!found) throw new MatrixError("M_NOT_FOUND", "Unknown media");
    return { media_info: mediaInfo(found) };
  });

  app.post<MediaParams>(`${ADMIN}/media/quarantine/:serverName/:mediaId`, async (request) => {
    const admin = await auth.requireAdmin(request);
    const { serverName, mediaId } = parseMediaAddress(
      request.params.serverName,
      request.params.mediaId,
    );
    await quarantine.quarantine(quarantine.targetsOf(serverName, mediaId), admin.userId);
    return {};
  });

  app.post<MediaParams>(`${ADMIN}/media/unquarantine/:serverName/:mediaId`, async (request) => {
    await auth.requireAdmin(request);
    const { serverName, mediaId } = parseMediaAddress(
      request.params.serverName,
      request.params.mediaId,
    );
    await quarantine.unquarantine(quarantine.targetsOf(serverName, mediaId));
    return {};
  });

  for (const path of [
    `${ADMIN}/room/:roomId/media/quarantine`,
    `${ADMIN}/quarantine_media/:roomId`,
  ]) {
    app.post<{ Params: { roomId: string } }>(path, async (request) => {
      const admin = await auth.requireAdmin(request);
      if (!isValidRoomId(request.params.roomId)) {
        throw new MatrixError("M_INVALID_PARAM", "Invalid room id");
      }
      const caller = { accessToken: accessTokenOf(request) ?? "", clientAddress: request.ip };
      return {
        num_quarantined: await deps.rooms.quarantineRoom(
          request.params.roomId,
          admin.userId,
          caller,
        ),
      };
    });
  }

  app.post<{ Params: { userId: string } }>(
    `${ADMIN}/user/:userId/media/quarantine`,
    async (request) => {
      const admin = await auth.requireAdmin(request);
      const userId = request.params.userId;
      parseUserId(userId);
      return { num_quarantined: await quarantine.quarantineUser(userId, admin.userId) };
    },
  );

  for (const [action, safe] of [
    ["protect", true],
    ["unprotect", false],
  ] as const) {
    app.post<{ Params: { mediaId: string } }>(
      `${ADMIN}/media/${action}/:mediaId`,
      async (request) => {
        await auth.requireAdmin(request);
        const { mediaId } = parseMediaAddress(deps.serverName, request.params.mediaId);
        await quarantine.setProtected(mediaId, safe);
        return {};
      },
    );
  }
}

/** Synapse's 14-field `media_info`, for local or cached remote media. */
export function mediaInfo(found: MediaInfo) {
  if (found.local) {
    const m = found.media;
    return {
      media_origin: null,
      user_id: m.userId,
      media_id: m.mediaId,
      media_type: m.mediaType,
      media_length: m.mediaLength,
      upload_name: m.uploadName,
      created_ts: m.createdTs,
      filesystem_id: null,
      url_cache: m.urlCache,
      last_access_ts: m.lastAccessTs,
      quarantined_by: m.quarantinedBy,
      authenticated: m.authenticated,
      safe_from_quarantine: m.safeFromQuarantine,
      sha256: m.sha256,
      ...hashFields(m),
    };
  }
  const r = found.media;
  return {
    media_origin: r.origin,
    user_id: null,
    media_id: r.mediaId,
    media_type: r.mediaType,
    media_length: r.mediaLength,
    upload_name: r.uploadName,
    created_ts: r.createdTs,
    filesystem_id: r.filesystemId,
    url_cache: null,
    last_access_ts: r.lastAccessTs,
    quarantined_by: r.quarantinedBy,
    authenticated: r.authenticated,
    safe_from_quarantine: null,
    sha256: r.sha256,
    ...hashFields(r),
  };
}

/** mxcd's extra fields beside `sha256` (docs/trust-and-safety.md "Stored hashes"). */
function hashFields(m: MediaHashes) {
  return { md5: m.md5, pdq: m.pdq, pdq_quality: m.pdqQuality };
}
