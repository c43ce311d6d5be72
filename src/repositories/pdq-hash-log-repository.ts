/**
 * The PDQ hash log (migration 0011-pdq-hash-log.ts) and the look-ups of
 * stored media by hash: appending a recorded hash (in the writer's
 * transaction), the catch-up range scan of each process's similarity index,
 * the verification of candidates against the current media rows, and the
 * exact `sha256` / `md5` look-ups of the admin API.
 */
import { sql } from "kysely";
import type { Database, Db } from "../db/database.js";
import { allocateStreamIds, lockStreamPosition } from "../db/stream-position.js";

/** One log record. `origin` is null for local media. */
export interface PdqLogEntry {
  readonly streamId: number;
  readonly origin: string | null;
  readonly mediaId: string;
  readonly pdq: string;
}

/**
 * A log record checked against its media row: `current` is the row's pdq
 * now (null when gone); `newest` the item's newest log record.
 */
export interface VerifiedEntry extends PdqLogEntry {
  readonly current: string | null;
  readonly newest: number;
}

/** A media item found by an exact hash; `origin` null for local media. */
export interface ExactMatch {
  readonly origin: string | null;
  readonly mediaId: string;
}

/**
 * Takes the log's position-row lock in `tx`: ids are then allocated and
 * become visible in commit order. Hash writers call it first, before any
 * media row update, so every writer takes the locks in the same order.
 */
export async function lockPdqLog(tx: Db): Promise<void> {
  await lockStreamPosition(tx, "pdq_hash_position");
}

/** Appends one recorded hash to the log, in the writer's transaction (after `lockPdqLog`). */
export async function appendPdqLog(
  tx: Db,
  origin: string | null,
  mediaId: string,
  pdq: string,
): Promise<void> {
  const streamId = await allocateStreamIds(tx, "pdq_hash_position", 1);
  await tx
    .insertInto("pdq_hash_log")
    .values({ stream_id: streamId, media_origin: origin, media_id: mediaId, pdq })
    .execute();
}

export class PdqHashLogRepository {
  constructor(private readonly database: Database) {}

  /** Log records with `stream_id > after`, oldest first, at most `limit`. */
  async after(after: number, limit: number): Promise<PdqLogEntry[]> {
    const rows = await this.database.db
      .selectFrom("pdq_hash_log")
      .select(["stream_id", "media_origin", "media_id", "pdq"])
      .where("stream_id", ">", after)
      .orderBy("stream_id")
      .limit(limit)
      .execute();
    return rows.map((r) => ({
      streamId: Number(r.stream_id),
      origin: r.media_origin,
      mediaId: r.media_id,
      pdq: r.pdq,
    }));
  }

  /**
   * The log records `streamIds` with the current `pdq` of their media rows
   * (null when the row is gone or has no hash) and the item's newest log
   * record: a few index probes per record.
   */
  async verify(streamIds: readonly number[]): Promise<VerifiedEntry[]> {
    const found: VerifiedEntry[] = [];
    for (let i = 0; i < streamIds.length; i += 500) {
      const part = streamIds.slice(i, i + 500);
      const rows = await this.database.db
        .selectFrom("pdq_hash_log as g")
        .leftJoin("local_media_repository as l", (join) =>
          join.on("g.media_origin", "is", null).onRef("l.media_id", "=", "g.media_id"),
        )
        .leftJoin("remote_media_cache as r", (join) =>
          join
            .onRef("r.media_origin", "=", "g.media_origin")
            .onRef("r.media_id", "=", "g.media_id"),
        )
        .select((eb) => [
          "g.stream_id",
          "g.media_origin",
          "g.media_id",
          "g.pdq",
          eb.fn.coalesce("l.pdq", "r.pdq").as("current"),
          eb
            .selectFrom("pdq_hash_log as n")
            .select((n) => n.fn.max("n.stream_id").as("m"))
            .whereRef("n.media_id", "=", "g.media_id")
            .where(
              sql<string>`coalesce(n.media_origin, '')`,
              "=",
              sql<string>`coalesce(g.media_origin, '')`,
            )
            .as("newest"),
        ])
        .where("g.stream_id", "in", part)
        .execute();
      for (const r of rows) {
        found.push({
          streamId: Number(r.stream_id),
          origin: r.media_origin,
          mediaId: r.media_id,
          pdq: r.pdq,
          current: r.current ?? null,
          newest: Number(r.newest),
        });
      }
    }
    return found;
  }

  /**
   * Media whose `column` (sha256 or md5) equals `hash`: local first by
   * media id, then cached remote by (origin, media id); after `after` in
   * that order, at most `limit`.
   */
  async exact(
    column: "sha256" | "md5",
    hash: string,
    after: ExactMatch | null,
    limit: number,
  ): Promise<ExactMatch[]> {
    const found: ExactMatch[] = [];
    if (after === null || after.origin === null) {
      let query = this.database.db
        .selectFrom("local_media_repository")
        .select("media_id")
        .where(column, "=", hash)
        .orderBy("media_id")
        .limit(limit);
      if (after !== null) query = query.where("media_id", ">", after.mediaId);
      for (const r of await query.execute()) found.push({ origin: null, mediaId: r.media_id });
    }
    if (found.length < limit) {
      let query = this.database.db
        .selectFrom("remote_media_cache")
        .select(["media_origin", "media_id"])
        .where(column, "=", hash)
        .orderBy("media_origin")
        .orderBy("media_id")
        .limit(limit - found.length);
      if (after !== null && after.origin !== null) {
        const { origin, mediaId } = after;
        query = query.where((eb) =>
          eb(eb.refTuple("media_origin", "media_id"), ">", eb.tuple(origin, mediaId)),
        );
      }
      for (const r of await query.execute()) {
        found.push({ origin: r.media_origin, mediaId: r.media_id });
      }
    }
    return found;
  }

  /**
   * The PDQ columns of one media item (`origin` null for local); undefined
   * when the item is unknown.
   */
  async pdqOf(
    origin: string | null,
    mediaId: string,
  ): Promise<{ pdq: string | null; status: string | null; reason: string | null } | undefined> {
    const row =
      origin === null
        ? await this.database.db
            .selectFrom("local_media_repository")
            .select(["pdq", "pdq_status", "pdq_reason"])
            .where("media_id", "=", mediaId)
            .executeTakeFirst()
        : await this.database.db
            .selectFrom("remote_media_cache")
            .select(["pdq", "pdq_status", "pdq_reason"])
            .where("media_origin", "=", origin)
            .where("media_id", "=", mediaId)
            .executeTakeFirst();
    return row && { pdq: row.pdq, status: row.pdq_status, reason: row.pdq_reason };
  }
}
