/**
 * Synapse's media admin API, listing and deletion (synapse-media-admin.md
 * A3, A4, A12–A15; docs/admin-api.md): a user's media, deleting media by id,
 * by user, by age and size, purging the remote cache, and per-user usage.
 *
 * Checks run in Synapse's order (auth, then path, then parameters), with its
 * texts; a non-local user or server is 400 M_INVALID_PARAM rather than
 * Synapse's M_UNKNOWN, and `limit=0` is refused (docs/compatibility.md).
 *
 * Routing: DELETE `/media/{server}/{id}` and POST `/media/{server}/delete`
 * are different methods, and Fastify routes per method, so media whose id is
 * `delete` stays addressable (Synapse answers 405 there).
 */
import type { FastifyInstance } from "fastify";
import { MatrixError } from "../../domain/matrix-error.js";
import { parseMediaAddress } from "../../identifiers/media-id.js";
import { parseUserId } from "../../identifiers/user-id.js";
import {
  type LocalMedia,
  MEDIA_STATISTICS_ORDER_BY,
  type MediaAdminService,
  type MediaStatisticsQuery,
  USER_MEDIA_ORDER_BY,
  type UserMediaPage,
} from "../../media/media-admin-service.js";
import type { MediaDeletionService } from "../../media/media-deletion-service.js";
import type { Auth } from "../auth.js";
import {
  booleanParam,
  enumParam,
  firstParam,
  integerParam,
  type Query,
  requiredIntegerParam,
} from "../query-params.js";

/** What the media admin routes call. */
export interface MediaAdminRouteDeps {
  serverName: string;
  auth: Auth;
  admin: MediaAdminService;
  deletion: MediaDeletionService;
}

const V1 = "/_synapse/admin/v1";
const DIRECTIONS = ["b", "f"] as const;
/** Below this, `before_ts` is surely in seconds, not milliseconds (Synapse's check). */
const MIN_BEFORE_TS = 30_000_000_000;

type UserParams = { Params: { userId: string } };
type MediaParams = { Params: { serverName: string; mediaId: string } };
type ServerParams = { Params: { serverName: string } };

/** Registers A3, A4, A12, A13 (both paths), A14 and A15. */
export function registerMediaAdminRoutes(app: FastifyInstance, deps: MediaAdminRouteDeps): void {
  registerUserMediaRoutes(app, deps);
  registerDeletionRoutes(app, deps);
  registerStatisticsRoute(app, deps);
}

/** A3 and A4: list, or delete, one page of a local user's media. */
function registerUserMediaRoutes(app: FastifyInstance, deps: MediaAdminRouteDeps): void {
  /** Steps 2–6 of A3: the user, then the page parameters. */
  const userPage = async (rawUserId: string, query: Query): Promise<UserMediaPage> => {
    if (parseUserId(rawUserId).domain !== deps.serverName) {
      throw new MatrixError("M_INVALID_PARAM", "Can only look up local users");
    }
    if (!(await deps.admin.userExists(rawUserId)))
      throw new MatrixError("M_NOT_FOUND", "Unknown user");
    const { from, limit } = paging(query);
    const orderBy = enumParam(query, "order_by", USER_MEDIA_ORDER_BY);
    const dir = enumParam(query, "dir", DIRECTIONS);
    // Neither given: newest first. Either given: the other defaults to created_ts / f.
    const unordered = orderBy === undefined && dir === undefined;
    return {
      userId: rawUserId,
      from,
      limit,
      orderBy: orderBy ?? "created_ts",
      direction: unordered ? "b" : (dir ?? "f"),
    };
  };

  app.get<UserParams>(`${V1}/users/:userId/media`, async (request) => {
    await deps.auth.requireAdmin(request);
    const page = await userPage(request.params.userId, request.query as Query);
    const { media, total } = await deps.admin.userMedia(page);
    return {
      media: media.map(mediaObject),
      total,
      ...(page.from + page.limit < total && { next_token: page.from + media.length }),
    };
  });

  app.delete<UserParams>(`${V1}/users/:userId/media`, async (request) => {
    await deps.auth.requireAdmin(request);
    const page = await userPage(request.params.userId, request.query as Query);
    return deleted(await deps.deletion.deleteUserMedia(page));
  });
}

/** A12, A13 (both paths) and A14. */
function registerDeletionRoutes(app: FastifyInstance, deps: MediaAdminRouteDeps): void {
  app.delete<MediaParams>(`${V1}/media/:serverName/:mediaId`, async (request) => {
    await deps.auth.requireAdmin(request);
    const { serverName, mediaId } = parseMediaAddress(
      request.params.serverName,
      request.params.mediaId,
    );
    if (serverName !== deps.serverName) {
      throw new MatrixError("M_INVALID_PARAM", "Can only delete local media");
    }
    const outcome = await deps.deletion.deleteLocalMedia(mediaId);
    if (outcome === "unknown") throw new MatrixError("M_NOT_FOUND", "Unknown media");
    return deleted(outcome === "deleted" ? [mediaId] : []);
  });

  /** A13 steps 2–6; `serverName` only on the legacy path. */
  const deleteOld = async (query: Query, serverName?: string) => {
    const beforeTs = requiredIntegerParam(query, "before_ts");
    const sizeGt = integerParam(query, "size_gt", 0);
    const keepProfiles = booleanParam(query, "keep_profiles", true);
    assertMilliseconds(beforeTs);
    if (serverName !== undefined && serverName !== deps.serverName) {
      throw new MatrixError("M_INVALID_PARAM", "Can only delete local media");
    }
    return deleted(await deps.deletion.deleteOldMedia({ beforeTs, sizeGt, keepProfiles }));
  };

  app.post(`${V1}/media/delete`, async (request) => {
    await deps.auth.requireAdmin(request);
    return deleteOld(request.query as Query);
  });

  // Deprecated since Synapse 1.78.0, still used by older tools.
  app.post<ServerParams>(`${V1}/media/:serverName/delete`, async (request) => {
    await deps.auth.requireAdmin(request);
    return deleteOld(request.query as Query, request.params.serverName);
  });

  app.post(`${V1}/purge_media_cache`, async (request) => {
    await deps.auth.requireAdmin(request);
    const beforeTs = requiredIntegerParam(request.query as Query, "before_ts");
    assertMilliseconds(beforeTs);
    return { deleted: await deps.deletion.purgeRemoteCache(beforeTs) };
  });
}

/** A15: per-user media usage. */
function registerStatisticsRoute(app: FastifyInstance, deps: MediaAdminRouteDeps): void {
  app.get(`${V1}/statistics/users/media`, async (request) => {
    await deps.auth.requireAdmin(request);
    const query = statisticsQuery(request.query as Query);
    const { users, total } = await deps.admin.usage(query);
    return {
      users: users.map((u) => ({
        user_id: u.userId,
        displayname: u.displayname,
        media_count: u.mediaCount,
        media_length: u.mediaLength,
      })),
      total,
      ...(query.from + query.limit < total && { next_token: query.from + users.length }),
    };
  });
}

/** A15's parameters, checked in Synapse's order with its texts. */
function statisticsQuery(query: Query): MediaStatisticsQuery {
  const orderBy = enumParam(query, "order_by", MEDIA_STATISTICS_ORDER_BY) ?? "user_id";
  const { from, limit } = paging(query);
  const fromTs = integerParam(query, "from_ts", 0);
  const untilTs = integerParam(query, "until_ts");
  if (untilTs !== undefined && untilTs <= fromTs) {
    throw new MatrixError(
      "M_INVALID_PARAM",
      "Query parameter until_ts must be greater than from_ts.",
    );
  }
  const searchTerm = firstParam(query, "search_term");
  if (searchTerm === "") {
    throw new MatrixError(
      "M_INVALID_PARAM",
      "Query parameter search_term cannot be an empty string.",
    );
  }
  const direction = enumParam(query, "dir", DIRECTIONS) ?? "f";
  return { from, limit, fromTs, untilTs, searchTerm, orderBy, direction };
}

/**
 * `from` (default 0) and `limit` (default 100), both integers ≥ 0; `limit=0`
 * is refused because it answers `next_token == from` and loops a client.
 */
function paging(query: Query): { from: number; limit: number } {
  const from = integerParam(query, "from", 0);
  const limit = integerParam(query, "limit", 100);
  if (limit === 0) {
    throw new MatrixError("M_INVALID_PARAM", "Query parameter limit must be greater than 0");
  }
  return { from, limit };
}

/** A13/A14: a `before_ts` that looks like seconds is refused, as Synapse does. */
function assertMilliseconds(beforeTs: number): void {
  if (beforeTs < MIN_BEFORE_TS) {
    throw new MatrixError(
      "M_INVALID_PARAM",
      "Query parameter before_ts you provided is from the year 1970. " +
        "Double check that you are providing a timestamp in milliseconds.",
    );
  }
}

function deleted(ids: string[]) {
  return { deleted_media: ids, total: ids.length };
}

/** A3's media object: all twelve fields Synapse returns, flags as JSON booleans. */
function mediaObject(m: LocalMedia) {
  return {
    media_id: m.mediaId,
    media_type: m.mediaType,
    media_length: m.mediaLength,
    upload_name: m.uploadName,
    created_ts: m.createdTs,
    url_cache: m.urlCache,
    last_access_ts: m.lastAccessTs,
    quarantined_by: m.quarantinedBy,
    safe_from_quarantine: m.safeFromQuarantine,
    user_id: m.userId,
    authenticated: m.authenticated,
    sha256: m.sha256,
    // mxcd's extra fields (docs/trust-and-safety.md "Stored hashes").
    md5: m.md5,
    pdq: m.pdq,
    pdq_quality: m.pdqQuality,
  };
}
