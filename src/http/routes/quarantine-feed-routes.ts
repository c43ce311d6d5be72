/**
 * `GET /_synapse/admin/v1/media/quarantine_changes` (reference A11, §7):
 * `from` exclusive (default 0), oldest first, 100 per page, `next_batch`;
 * mxcd adds `limit` (1–1000) and `timeout` (milliseconds, up to 60000) for
 * long-polling, and the record fields `sha256`, `quarantined_by` and `ts`.
 */
import type { FastifyInstance } from "fastify";
import { MatrixError } from "../../domain/matrix-error.js";
import type { QuarantineFeedService } from "../../media/quarantine-feed-service.js";
import type { Auth } from "../auth.js";
import { integerParam, type Query } from "../query-params.js";

export const MAX_FEED_LIMIT = 1000;
export const MAX_FEED_TIMEOUT_MS = 60_000;

export function registerQuarantineFeedRoutes(
  app: FastifyInstance,
  deps: { serverName: string; auth: Auth; feed: QuarantineFeedService },
): void {
  app.get("/_synapse/admin/v1/media/quarantine_changes", async (request, reply) => {
    await deps.auth.requireAdmin(request);
    const query = request.query as Query;
    const from = integerParam(query, "from", 0);
    const limit = integerParam(query, "limit", 100);
    if (limit < 1 || limit > MAX_FEED_LIMIT) {
      throw new MatrixError(
        "M_INVALID_PARAM",
        `Query parameter limit must be between 1 and ${MAX_FEED_LIMIT}`,
      );
    }
    const timeout = integerParam(query, "timeout", 0);
    if (timeout > MAX_FEED_TIMEOUT_MS) {
      throw new MatrixError(
        "M_INVALID_PARAM",
        `Query parameter timeout must be at most ${MAX_FEED_TIMEOUT_MS}`,
      );
    }
    // Stop waiting when the client goes away.
    const closed = new AbortController();
    reply.raw.once("close", () => closed.abort());
    const page = await deps.feed.read(from, limit, timeout, closed.signal);
    return {
      next_batch: page.nextBatch,
      changes: page.records.map((r) => ({
        origin: r.origin ?? deps.serverName,
        media_id: r.mediaId,
        quarantined: r.quarantined,
        sha256: r.sha256,
        md5: r.md5,
        pdq: r.pdq,
        pdq_quality: r.pdqQuality,
        quarantined_by: r.quarantinedBy,
        ts: r.ts,
      })),
    };
  });
}
