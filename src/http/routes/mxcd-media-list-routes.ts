/**
 * mxcd's server-wide media listing (docs/admin-api.md "Server-wide media
 * listing"; the API the moderation console's grid reads), under
 * `/_mxcd/admin/v1/` — Synapse has no such endpoint (synapse#11986):
 *
 * - `GET /media?limit&from&user_id&room_id&origin&media_type&min_size&max_size&quarantined&protected`
 *   (each item with `blur_preview` when the server made one: migration 0018)
 * - `GET /media/summary?<the same filters>` → `{count, total_bytes}`
 * - `GET /media/{server_name}/{media_id}/references`
 *
 * Admin access token as Synapse's admin API (401 without, 403 otherwise).
 * Every malformed parameter is 400 M_INVALID_PARAM naming it.
 */
import type { FastifyInstance } from "fastify";
import { MatrixError } from "../../domain/matrix-error.js";
import { parseMediaAddress } from "../../identifiers/media-id.js";
import { isValidRoomId } from "../../identifiers/room-id.js";
import { isValidServerName } from "../../identifiers/server-name.js";
import { MAX_USER_ID_LENGTH, parseUserId } from "../../identifiers/user-id.js";
import type {
  MediaListCursor,
  MediaListFilter,
  MediaListingService,
} from "../../media/media-listing-service.js";
import type { Auth } from "../auth.js";
import {
  booleanParam,
  firstParam,
  integerParam,
  jsonToken,
  jsonTokenParam,
  pageLimitParam,
  type Query,
} from "../query-params.js";
import { mediaInfo } from "./media-quarantine-routes.js";

export interface MxcdMediaListRouteDeps {
  serverName: string;
  auth: Auth;
  listing: MediaListingService;
}

const V1 = "/_mxcd/admin/v1";
export const DEFAULT_LIST_LIMIT = 50;
/** A larger `limit` is lowered to this. */
export const MAX_LIST_LIMIT = 1000;
/** Printable ASCII, as a stored Content-Type is; bounded. */
const MEDIA_TYPE = /^[\x20-\x7e]{1,255}$/;

type MediaParams = { Params: { serverName: string; mediaId: string } };

export function registerMxcdMediaListRoutes(app: FastifyInstance, deps: MxcdMediaListRouteDeps) {
  const { auth, listing, serverName } = deps;

  app.get(`${V1}/media`, async (request) => {
    await auth.requireAdmin(request);
    const query = request.query as Query;
    const filter = filterParams(query, serverName);
    const limit = pageLimitParam(query, DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT);
    const page = await listing.list(filter, cursorParam(query), limit);
    return {
      media: page.media.map((m) => ({
        ...mediaInfo(m),
        origin: m.local ? serverName : m.media.origin,
        // Never for quarantined media: its picture is for the admin bypass only.
        ...(m.blurPreview !== null &&
          m.media.quarantinedBy === null && {
            blur_preview: m.blurPreview,
          }),
      })),
      ...(page.next && { next_batch: cursorToken(page.next) }),
    };
  });

  app.get(`${V1}/media/summary`, async (request) => {
    await auth.requireAdmin(request);
    const summary = await listing.summary(filterParams(request.query as Query, serverName));
    return { count: summary.count, total_bytes: summary.totalBytes };
  });

  app.get<MediaParams>(`${V1}/media/:serverName/:mediaId/references`, async (request) => {
    await auth.requireAdmin(request);
    const address = parseMediaAddress(request.params.serverName, request.params.mediaId);
    const found = await listing.references(address.serverName, address.mediaId);
    if (found === undefined) throw new MatrixError("M_NOT_FOUND", "Unknown media");
    return {
      references: found.references.map((r) => ({
        kind: r.kind,
        room_id: r.roomId,
        event_id: r.eventId,
        user_id: r.userId,
      })),
      truncated: found.truncated,
    };
  });
}

/** The listing's filters from the query; each malformed one is 400 M_INVALID_PARAM. */
function filterParams(query: Query, serverName: string): MediaListFilter {
  const invalid = (message: string) => new MatrixError("M_INVALID_PARAM", message);
  const userId = firstParam(query, "user_id");
  if (userId !== undefined) {
    parseUserId(userId);
    if (userId.length > MAX_USER_ID_LENGTH) throw invalid("Query parameter user_id is too long");
  }
  const roomId = firstParam(query, "room_id");
  if (roomId !== undefined && !isValidRoomId(roomId)) {
    throw invalid("Query parameter room_id is not a valid room id");
  }
  const origin = firstParam(query, "origin");
  if (origin !== undefined && origin !== "local" && !isValidServerName(origin)) {
    throw invalid("Query parameter origin must be 'local' or a server name");
  }
  const mediaType = firstParam(query, "media_type");
  if (mediaType !== undefined && !MEDIA_TYPE.test(mediaType)) {
    throw invalid("Query parameter media_type must be 1-255 printable ASCII characters");
  }
  const minSize = integerParam(query, "min_size");
  const maxSize = integerParam(query, "max_size");
  if (minSize !== undefined && maxSize !== undefined && minSize > maxSize) {
    throw invalid("Query parameter min_size must not exceed max_size");
  }
  const quarantined = booleanParam(query, "quarantined");
  const isProtected = booleanParam(query, "protected");
  return {
    ...(userId !== undefined && { userId }),
    ...(roomId !== undefined && { roomId }),
    ...(origin !== undefined && {
      origin:
        origin === "local" || origin === serverName
          ? { local: true as const }
          : { local: false as const, name: origin },
    }),
    ...(mediaType !== undefined && {
      mediaType: mediaType.endsWith("/") ? { prefix: mediaType } : { exact: mediaType },
    }),
    ...(minSize !== undefined && { minSize }),
    ...(maxSize !== undefined && { maxSize }),
    ...(quarantined !== undefined && { quarantined }),
    ...(isProtected !== undefined && { protected: isProtected }),
  };
}

/**
 * `from`: the `next_batch` of the previous page, the last item's
 * `[created_ts, origin (null for local), media_id]` as base64url JSON.
 * Opaque to clients; anything else is 400.
 */
function cursorParam(query: Query): MediaListCursor | null {
  const parsed = jsonTokenParam(query, "from", 3);
  if (parsed === null) return null;
  const [ts, origin, mediaId] = parsed;
  if (
    typeof ts !== "number" ||
    !Number.isSafeInteger(ts) ||
    !(origin === null || (typeof origin === "string" && isValidServerName(origin))) ||
    typeof mediaId !== "string" ||
    mediaId.length === 0 ||
    mediaId.length > 255
  ) {
    throw new MatrixError("M_INVALID_PARAM", "Invalid from token");
  }
  return { ts, origin, mediaId };
}

function cursorToken(cursor: MediaListCursor): string {
  return jsonToken([cursor.ts, cursor.origin, cursor.mediaId]);
}
