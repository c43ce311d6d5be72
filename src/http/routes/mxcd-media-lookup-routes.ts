/**
 * mxcd's own admin API for finding media by hash (docs/trust-and-safety.md
 * "Admin API: finding media by hash"; docs/api.md), under `/_mxcd/admin/v1/`
 * — never under Synapse's namespace:
 *
 * - `GET /media/lookup?sha256=…` | `md5=…` | `pdq=…&max_distance=31`
 * - `GET /media/{server_name}/{media_id}/similar?max_distance=31`
 *
 * Both need an admin access token (as Synapse's admin API), page with
 * `from` / `limit` and an opaque `next_batch` (absent on the last page), and
 * answer rows of Synapse's `media_info` fields plus `distance`. The service
 * reads a page's media rows in one query, not one per row.
 */
import type { FastifyInstance } from "fastify";
import { MatrixError } from "../../domain/matrix-error.js";
import { parseMediaAddress } from "../../identifiers/media-id.js";
import type { PdqCursor, PdqSearchService } from "../../media/pdq-search-service.js";
import type { Auth } from "../auth.js";
import {
  firstParam,
  integerParam,
  jsonToken,
  jsonTokenParam,
  pageLimitParam,
  type Query,
} from "../query-params.js";
import { mediaInfo } from "./media-quarantine-routes.js";

export interface MxcdMediaLookupRouteDeps {
  auth: Auth;
  search: PdqSearchService;
}

const V1 = "/_mxcd/admin/v1";
/** `max_distance` when absent, and its bound (a quarter of PDQ's 256 bits). */
export const DEFAULT_MAX_DISTANCE = 31;
export const MAX_DISTANCE_BOUND = 64;
export const DEFAULT_LIMIT = 100;
/** A larger `limit` is lowered to this. */
export const MAX_LIMIT = 1000;

const HEX_LENGTH = { sha256: 64, md5: 32, pdq: 64 } as const;
type HashParam = keyof typeof HEX_LENGTH;

type MediaParams = { Params: { serverName: string; mediaId: string } };

export function registerMxcdMediaLookupRoutes(
  app: FastifyInstance,
  deps: MxcdMediaLookupRouteDeps,
): void {
  const similarPage = async (
    pdq: string,
    query: Query,
    exclude?: { origin: string; mediaId: string },
  ) => {
    const after = pdqCursorParam(query);
    const page = await deps.search.findSimilarPage(pdq, maxDistanceParam(query), {
      limit: limitParam(query),
      ...(after && { after }),
      ...(exclude && { exclude }),
    });
    return {
      media: page.rows.map((row) => ({ ...mediaInfo(row.media), distance: row.distance })),
      ...(page.next && { next_batch: pdqToken(page.next) }),
    };
  };

  app.get(`${V1}/media/lookup`, async (request) => {
    await deps.auth.requireAdmin(request);
    const query = request.query as Query;
    const given = (Object.keys(HEX_LENGTH) as HashParam[]).filter(
      (name) => firstParam(query, name) !== undefined,
    );
    if (given.length !== 1) {
      throw new MatrixError(
        "M_INVALID_PARAM",
        "Exactly one of the query parameters sha256, md5 and pdq is required",
      );
    }
    const name = given[0] as HashParam;
    const hash = hexParam(query, name);
    if (name === "pdq") return similarPage(hash, query);
    if (firstParam(query, "max_distance") !== undefined) {
      throw new MatrixError("M_INVALID_PARAM", "max_distance applies to pdq look-ups only");
    }
    const page = await deps.search.findExactPage(
      name,
      hash,
      exactCursorParam(query),
      limitParam(query),
    );
    return {
      media: page.rows.map((row) => ({ ...mediaInfo(row), distance: 0 })),
      ...(page.next && { next_batch: exactToken(page.next) }),
    };
  });

  app.get<MediaParams>(`${V1}/media/:serverName/:mediaId/similar`, async (request) => {
    await deps.auth.requireAdmin(request);
    const { serverName, mediaId } = parseMediaAddress(
      request.params.serverName,
      request.params.mediaId,
    );
    const query = request.query as Query;
    // Parameters are checked even when the item turns out to have no hash.
    maxDistanceParam(query);
    limitParam(query);
    pdqCursorParam(query);
    const own = await deps.search.pdqOf(serverName, mediaId);
    if (own === undefined) throw new MatrixError("M_NOT_FOUND", "Unknown media");
    if (own.pdq === null) return { media: [], pdq: null, reason: own.reason };
    const page = await similarPage(own.pdq, query, { origin: serverName, mediaId });
    return { ...page, pdq: own.pdq };
  });
}

/** A hex hash parameter of the right length; upper case is accepted and lowered. */
function hexParam(query: Query, name: HashParam): string {
  const raw = firstParam(query, name) ?? "";
  const length = HEX_LENGTH[name];
  if (raw.length !== length || !/^[0-9a-fA-F]+$/.test(raw)) {
    throw new MatrixError(
      "M_INVALID_PARAM",
      `Query parameter ${name} must be ${length} hexadecimal digits`,
    );
  }
  return raw.toLowerCase();
}

function maxDistanceParam(query: Query): number {
  const value = integerParam(query, "max_distance", DEFAULT_MAX_DISTANCE);
  if (value > MAX_DISTANCE_BOUND) {
    throw new MatrixError(
      "M_INVALID_PARAM",
      `Query parameter max_distance must be between 0 and ${MAX_DISTANCE_BOUND}`,
    );
  }
  return value;
}

function limitParam(query: Query): number {
  return pageLimitParam(query, DEFAULT_LIMIT, MAX_LIMIT);
}

/** `from` of a PDQ page: `<distance>_<stream id>` as given in `next_batch`. */
function pdqCursorParam(query: Query): PdqCursor | undefined {
  const raw = firstParam(query, "from");
  if (raw === undefined) return undefined;
  const match = /^(\d{1,3})_(\d{1,15})$/.exec(raw);
  if (!match) throw new MatrixError("M_INVALID_PARAM", "Invalid from token");
  return { distance: Number(match[1]), streamId: Number(match[2]) };
}

function pdqToken(cursor: PdqCursor): string {
  return `${cursor.distance}_${cursor.streamId}`;
}

/**
 * `from` of an exact-hash page: the last row's `[origin, media id]` (origin
 * null for local media) as base64url JSON, as given in `next_batch`.
 */
function exactCursorParam(query: Query): { origin: string | null; mediaId: string } | null {
  const parsed = jsonTokenParam(query, "from", 2);
  if (parsed === null) return null;
  if (!(parsed[0] === null || typeof parsed[0] === "string") || typeof parsed[1] !== "string") {
    throw new MatrixError("M_INVALID_PARAM", "Invalid from token");
  }
  return { origin: parsed[0], mediaId: parsed[1] };
}

function exactToken(m: { origin: string | null; mediaId: string }): string {
  return jsonToken([m.origin, m.mediaId]);
}
