/**
 * The reads of the quarantine-feed backfill (quarantine-feed-backfill-job.ts):
 * pages of media rows by primary-key keyset, and re-reads of given rows, each
 * row with its quarantine state and whether the feed holds any record of it
 * (one probe into the `(origin, media_id)` feed index; local media is origin
 * NULL in the feed).
 */
import type { ExpressionBuilder } from "kysely";
import type { Tx } from "../db/database.js";
import type { DatabaseSchema } from "../db/schema.js";

/** One media row as the backfill sees it. `origin` is null for local media. */
export interface ScannedRow {
  readonly origin: string | null;
  readonly mediaId: string;
  readonly sha256: string | null;
  readonly quarantinedBy: string | null;
  /** True when the feed has any record of this media. */
  readonly recorded: boolean;
}

/** True for a row the backfill must record: quarantined, and unknown to the feed. */
export function needsRecord(row: ScannedRow): boolean {
  return row.quarantinedBy !== null && !row.recorded;
}

type LocalScope = ExpressionBuilder<
  DatabaseSchema & { m: DatabaseSchema["local_media_repository"] },
  "m"
>;
type RemoteScope = ExpressionBuilder<
  DatabaseSchema & { m: DatabaseSchema["remote_media_cache"] },
  "m"
>;

const recordedLocal = (eb: LocalScope) =>
  eb
    .exists(
      eb
        .selectFrom("quarantined_media_changes as c")
        .select("c.stream_id")
        .where("c.origin", "is", null)
        .whereRef("c.media_id", "=", "m.media_id"),
    )
    .as("recorded");

const recordedRemote = (eb: RemoteScope) =>
  eb
    .exists(
      eb
        .selectFrom("quarantined_media_changes as c")
        .select("c.stream_id")
        .whereRef("c.origin", "=", "m.media_origin")
        .whereRef("c.media_id", "=", "m.media_id"),
    )
    .as("recorded");

/** Local rows: the next `limit` after `after` by media_id, or exactly those in `ids`. */
export async function readLocal(
  tx: Tx,
  scope: { after: string; limit: number } | { ids: readonly string[] },
): Promise<ScannedRow[]> {
  let query = tx
    .selectFrom("local_media_repository as m")
    .select(["m.media_id", "m.sha256", "m.quarantined_by"])
    .select(recordedLocal);
  query =
    "ids" in scope
      ? query.where("m.media_id", "in", scope.ids)
      : query.where("m.media_id", ">", scope.after).orderBy("m.media_id").limit(scope.limit);
  const rows = await query.execute();
  return rows.map((r) => ({
    origin: null,
    mediaId: r.media_id,
    sha256: r.sha256,
    quarantinedBy: r.quarantined_by,
    recorded: Boolean(r.recorded),
  }));
}

/**
 * Cached remote rows: the next `limit` after (`origin`, `mediaId`) by that
 * pair, or exactly those of `origin` whose ids are in `ids`.
 */
export async function readRemote(
  tx: Tx,
  scope:
    | { origin: string; mediaId: string; limit: number }
    | { origin: string; ids: readonly string[] },
): Promise<ScannedRow[]> {
  let query = tx
    .selectFrom("remote_media_cache as m")
    .select(["m.media_origin", "m.media_id", "m.sha256", "m.quarantined_by"])
    .select(recordedRemote);
  query =
    "ids" in scope
      ? query.where("m.media_origin", "=", scope.origin).where("m.media_id", "in", scope.ids)
      : query
          .where((eb) =>
            eb(
              eb.refTuple("m.media_origin", "m.media_id"),
              ">",
              eb.tuple(scope.origin, scope.mediaId),
            ),
          )
          .orderBy("m.media_origin")
          .orderBy("m.media_id")
          .limit(scope.limit);
  const rows = await query.execute();
  return rows.map((r) => ({
    origin: r.media_origin,
    mediaId: r.media_id,
    sha256: r.sha256,
    quarantinedBy: r.quarantined_by,
    recorded: Boolean(r.recorded),
  }));
}
