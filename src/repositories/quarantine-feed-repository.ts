/**
 * Reading the quarantine change feed. Ids become visible in commit order
 * with no gaps (see QuarantineRepository.lockFeed and
 * docs/quarantine-feed.md), so a page is a plain primary-key range scan
 * `from < stream_id <= position`, whatever the size of the table.
 *
 * Each record carries the item's stored MD5/PDQ (docs/trust-and-safety.md
 * "Stored hashes") read from its media row at read time, by primary key —
 * at most `limit` probes per page: a hash computed after the quarantine
 * (the backfill, the hashing queue) shows in every record of the item;
 * null when not computed or the media row is gone.
 */
import type { Database } from "../db/database.js";
import type { MediaHashes } from "../domain/media-hashes.js";

export interface FeedRecord extends MediaHashes {
  readonly streamId: number;
  /** Null for local media. */
  readonly origin: string | null;
  readonly mediaId: string;
  readonly quarantined: boolean;
  readonly sha256: string | null;
  readonly quarantinedBy: string | null;
  readonly ts: number;
}

export class QuarantineFeedRepository {
  constructor(private readonly database: Database) {}

  /**
   * The committed position: the highest stream id whose record, and every
   * lower one, is visible. 1 on an empty feed (Synapse's streams start there).
   */
  async position(): Promise<number> {
    const row = await this.database.db
      .selectFrom("quarantine_stream")
      .select("position")
      .where("id", "=", 1)
      .executeTakeFirstOrThrow();
    return Number(row.position);
  }

  /**
   * Moves the position up to `atLeast` if it is lower, never down, so the
   * next record id is above it (a feed continuing another's, e.g. Synapse's
   * after `mxcd import synapse`). Ids between the old position and
   * `atLeast` stay unused: readers page by range, so a hole is harmless,
   * and no id is ever reused. Returns the position after the call.
   */
  async raisePosition(atLeast: number): Promise<number> {
    await this.database.db
      .updateTable("quarantine_stream")
      .set({ position: atLeast })
      .where("id", "=", 1)
      .where("position", "<", atLeast)
      .execute();
    return this.position();
  }

  /** Records with `from < stream_id <= upTo`, oldest first, at most `limit`. */
  async page(from: number, upTo: number, limit: number): Promise<FeedRecord[]> {
    const rows = await this.database.db
      .selectFrom("quarantined_media_changes as c")
      .leftJoin("local_media_repository as l", (join) =>
        join.on("c.origin", "is", null).onRef("l.media_id", "=", "c.media_id"),
      )
      .leftJoin("remote_media_cache as r", (join) =>
        join.onRef("r.media_origin", "=", "c.origin").onRef("r.media_id", "=", "c.media_id"),
      )
      .selectAll("c")
      .select((eb) => [
        eb.fn.coalesce("l.md5", "r.md5").as("md5"),
        eb.fn.coalesce("l.pdq", "r.pdq").as("pdq"),
        eb.fn.coalesce("l.pdq_quality", "r.pdq_quality").as("pdq_quality"),
      ])
      .where("c.stream_id", ">", from)
      .where("c.stream_id", "<=", upTo)
      .orderBy("c.stream_id")
      .limit(limit)
      .execute();
    return rows.map((r) => ({
      streamId: Number(r.stream_id),
      origin: r.origin,
      mediaId: r.media_id,
      quarantined: Boolean(r.quarantined),
      sha256: r.sha256,
      md5: r.md5,
      pdq: r.pdq,
      pdqQuality: r.pdq_quality === null ? null : Number(r.pdq_quality),
      quarantinedBy: r.quarantined_by,
      ts: Number(r.ts),
    }));
  }
}
