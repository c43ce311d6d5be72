/**
 * The PDQ hash log (migration 0011-pdq-hash-log.ts) and the look-ups of
 * stored media by hash: appending a recorded hash (in the writer's
 * transaction), the catch-up range scan of each process's similarity index,
 * the verification of candidates against the current media rows, and the
 * admin API's reads: the media rows of a page of results (one query per
 * page, not one per row) and the exact `sha256` / `md5` look-ups.
 */
import { sql } from "kysely";
import type { Database, Db } from "../db/database.js";
import { allocateStreamIds, lockStreamPosition } from "../db/stream-position.js";
import {
  type LocalMedia,
  type RemoteMedia,
  toLocalMedia,
  toRemoteMedia,
} from "./media-repository.js";

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

/** A media item's key; `origin` null for local media. */
export interface MediaKey {
  readonly origin: string | null;
  readonly mediaId: string;
}

/** A stored media row, local or a cached remote copy (the shape of admin media info). */
export type StoredMedia =
  | { readonly local: true; readonly media: LocalMedia }
  | { readonly local: false; readonly media: RemoteMedia };

/** One log record as the similarity index needs it. */
export interface LoggedHash {
  readonly streamId: number;
  readonly pdq: string;
}

/** Ids per `IN (…)` list (SQLite's old bound on parameters is 999). */
const IN_LIST = 500;
/** Origins per query of `media` (each an OR term; SQLite bounds expression depth). */
const ORIGINS_PER_QUERY = 20;

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

  /**
   * Log records with `stream_id > after`, oldest first, at most `limit`:
   * only the two columns the index holds (a primary-key range scan).
   */
  async hashesAfter(after: number, limit: number): Promise<LoggedHash[]> {
    const rows = await this.database.db
      .selectFrom("pdq_hash_log")
      .select(["stream_id", "pdq"])
      .where("stream_id", ">", after)
      .orderBy("stream_id")
      .limit(limit)
      .execute();
    return rows.map((r) => ({ streamId: Number(r.stream_id), pdq: r.pdq }));
  }

  /** The newest log record's stream id; 0 when the log is empty (one primary-key probe). */
  async newestStreamId(): Promise<number> {
    const row = await this.database.db
      .selectFrom("pdq_hash_log")
      .select("stream_id")
      .orderBy("stream_id", "desc")
      .limit(1)
      .executeTakeFirst();
    return row === undefined ? 0 : Number(row.stream_id);
  }

  /**
   * The log records `streamIds` with the current `pdq` of their media rows
   * (null when the row is gone or has no hash) and the item's newest log
   * record: a few index probes per record.
   */
  async verify(streamIds: readonly number[]): Promise<VerifiedEntry[]> {
    const found: VerifiedEntry[] = [];
    for (let i = 0; i < streamIds.length; i += IN_LIST) {
      const part = streamIds.slice(i, i + IN_LIST);
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
   * The media rows of `keys` (local and cached remote), in no particular
   * order; keys whose row is gone are left out. One query per 500 local ids
   * and one per 20 remote origins (a page has few), not one per row.
   */
  async media(keys: readonly MediaKey[]): Promise<StoredMedia[]> {
    const found: StoredMedia[] = [];
    const local = keys.filter((k) => k.origin === null).map((k) => k.mediaId);
    for (let i = 0; i < local.length; i += IN_LIST) {
      const rows = await this.database.db
        .selectFrom("local_media_repository")
        .selectAll()
        .where("media_id", "in", local.slice(i, i + IN_LIST))
        .execute();
      for (const row of rows) found.push({ local: true, media: toLocalMedia(row) });
    }
    const byOrigin = new Map<string, string[]>();
    for (const { origin, mediaId } of keys) {
      if (origin === null) continue;
      const ids = byOrigin.get(origin);
      if (ids === undefined) byOrigin.set(origin, [mediaId]);
      else ids.push(mediaId);
    }
    const origins = [...byOrigin];
    for (let i = 0; i < origins.length; i += ORIGINS_PER_QUERY) {
      const rows = await this.database.db
        .selectFrom("remote_media_cache")
        .selectAll()
        .where((eb) =>
          eb.or(
            origins
              .slice(i, i + ORIGINS_PER_QUERY)
              .map(([origin, ids]) =>
                eb.and([eb("media_origin", "=", origin), eb("media_id", "in", ids)]),
              ),
          ),
        )
        .execute();
      for (const row of rows) found.push({ local: false, media: toRemoteMedia(row) });
    }
    return found;
  }

  /**
   * Media whose `column` (sha256 or md5) equals `hash`, with their rows:
   * local first by media id, then cached remote by (origin, media id);
   * after `after` in that order, at most `limit`.
   */
  async exact(
    column: "sha256" | "md5",
    hash: string,
    after: MediaKey | null,
    limit: number,
  ): Promise<StoredMedia[]> {
    const found: StoredMedia[] = [];
    if (after === null || after.origin === null) {
      let query = this.database.db
        .selectFrom("local_media_repository")
        .selectAll()
        .where(column, "=", hash)
        .orderBy("media_id")
        .limit(limit);
      if (after !== null) query = query.where("media_id", ">", after.mediaId);
      for (const row of await query.execute()) {
        found.push({ local: true, media: toLocalMedia(row) });
      }
    }
    if (found.length < limit) {
      let query = this.database.db
        .selectFrom("remote_media_cache")
        .selectAll()
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
      for (const row of await query.execute()) {
        found.push({ local: false, media: toRemoteMedia(row) });
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
