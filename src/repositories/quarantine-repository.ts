/**
 * SQL of the quarantine algorithm and its change feed. Every method takes
 * the transaction it runs in: the algorithm's reads, writes and feed records
 * must commit together (docs/quarantine-feed.md).
 *
 * Writes touch only rows whose state really changes (`quarantined_by IS
 * NULL` to quarantine, `IS NOT NULL` to release) and report them with
 * RETURNING, so the feed gets one record per real transition and nothing for
 * a no-op.
 */
import type { Db } from "../db/database.js";
import { allocateStreamIds, lockStreamPosition } from "../db/stream-position.js";

/** A media item whose quarantine state changed. `origin` is null for local media. */
export interface Transition {
  readonly origin: string | null;
  readonly mediaId: string;
  readonly sha256: string | null;
}

export interface FoundMedia {
  readonly origin: string | null;
  readonly mediaId: string;
  readonly sha256: string | null;
}

/** Largest IN (...) list sent in one statement. */
const CHUNK = 500;

function chunks<T>(items: readonly T[]): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += CHUNK) out.push(items.slice(i, i + CHUNK));
  return out;
}

export class QuarantineRepository {
  /**
   * Takes the feed's position row lock for the rest of `tx`. Called first by
   * every transaction that may write feed records, and by uploads before
   * their hash check, so a hash check and a concurrent quarantine of that
   * hash cannot interleave.
   */
  async lockFeed(tx: Db): Promise<void> {
    await lockStreamPosition(tx, "quarantine_stream");
  }

  /** Local rows among `ids`; protected ones left out when `skipProtected`. */
  async findLocal(tx: Db, ids: readonly string[], skipProtected: boolean): Promise<FoundMedia[]> {
    const found: FoundMedia[] = [];
    for (const part of chunks(ids)) {
      let query = tx
        .selectFrom("local_media_repository")
        .select(["media_id", "sha256"])
        .where("media_id", "in", part);
      if (skipProtected) query = query.where("safe_from_quarantine", "=", false);
      for (const row of await query.execute()) {
        found.push({ origin: null, mediaId: row.media_id, sha256: row.sha256 });
      }
    }
    return found;
  }

  /** Cached remote rows among `items`. */
  async findRemote(tx: Db, items: readonly { origin: string; mediaId: string }[]) {
    const found: FoundMedia[] = [];
    for (const item of items) {
      const row = await tx
        .selectFrom("remote_media_cache")
        .select(["media_id", "sha256"])
        .where("media_origin", "=", item.origin)
        .where("media_id", "=", item.mediaId)
        .executeTakeFirst();
      if (row) found.push({ origin: item.origin, mediaId: row.media_id, sha256: row.sha256 });
    }
    return found;
  }

  /**
   * Sets (`by` a user id) or clears (`by` null) `quarantined_by` on the local
   * rows named by id or having one of `hashes`, where that is a transition;
   * quarantine never touches protected rows.
   */
  async updateLocal(
    tx: Db,
    match: { ids?: readonly string[]; hashes?: readonly string[] },
    by: string | null,
  ) {
    const changed: Transition[] = [];
    for (const [column, values] of [
      ["media_id", match.ids],
      ["sha256", match.hashes],
    ] as const) {
      for (const part of chunks(values ?? [])) {
        let query = tx
          .updateTable("local_media_repository")
          .set({ quarantined_by: by })
          .where(column, "in", part);
        query =
          by === null
            ? query.where("quarantined_by", "is not", null)
            : query.where("quarantined_by", "is", null).where("safe_from_quarantine", "=", false);
        const rows = await query.returning(["media_id", "sha256"]).execute();
        for (const r of rows) changed.push({ origin: null, mediaId: r.media_id, sha256: r.sha256 });
      }
    }
    return changed;
  }

  /** As `updateLocal`, for the remote cache (which has no protection). */
  async updateRemote(
    tx: Db,
    match: { items?: readonly { origin: string; mediaId: string }[]; hashes?: readonly string[] },
    by: string | null,
  ) {
    const changed: Transition[] = [];
    for (const item of match.items ?? []) {
      const rows = await tx
        .updateTable("remote_media_cache")
        .set({ quarantined_by: by })
        .where("media_origin", "=", item.origin)
        .where("media_id", "=", item.mediaId)
        .where("quarantined_by", by === null ? "is not" : "is", null)
        .returning(["media_origin", "media_id", "sha256"])
        .execute();
      for (const r of rows)
        changed.push({ origin: r.media_origin, mediaId: r.media_id, sha256: r.sha256 });
    }
    for (const part of chunks(match.hashes ?? [])) {
      const rows = await tx
        .updateTable("remote_media_cache")
        .set({ quarantined_by: by })
        .where("sha256", "in", part)
        .where("quarantined_by", by === null ? "is not" : "is", null)
        .returning(["media_origin", "media_id", "sha256"])
        .execute();
      for (const r of rows)
        changed.push({ origin: r.media_origin, mediaId: r.media_id, sha256: r.sha256 });
    }
    return changed;
  }

  /** True when any quarantined local or cached remote media has these bytes. */
  async isHashQuarantined(tx: Db, sha256: string): Promise<boolean> {
    for (const table of ["local_media_repository", "remote_media_cache"] as const) {
      const row = await tx
        .selectFrom(table)
        .select("media_id")
        .where("sha256", "=", sha256)
        .where("quarantined_by", "is not", null)
        .limit(1)
        .executeTakeFirst();
      if (row) return true;
    }
    return false;
  }

  /** Records a block on uncached remote media; true when it is new. */
  async addBlock(
    tx: Db,
    origin: string,
    mediaId: string,
    by: string,
    ts: number,
  ): Promise<boolean> {
    const result = await tx
      .insertInto("quarantine_blocks")
      .values({ media_origin: origin, media_id: mediaId, quarantined_by: by, created_ts: ts })
      .onConflict((oc) => oc.doNothing())
      .executeTakeFirst();
    return Number(result.numInsertedOrUpdatedRows ?? 0) > 0;
  }

  async removeBlock(tx: Db, origin: string, mediaId: string): Promise<void> {
    await tx
      .deleteFrom("quarantine_blocks")
      .where("media_origin", "=", origin)
      .where("media_id", "=", mediaId)
      .execute();
  }

  /** Who blocked this remote media, if anyone. */
  async findBlock(tx: Db, origin: string, mediaId: string): Promise<string | undefined> {
    const row = await tx
      .selectFrom("quarantine_blocks")
      .select("quarantined_by")
      .where("media_origin", "=", origin)
      .where("media_id", "=", mediaId)
      .executeTakeFirst();
    return row?.quarantined_by;
  }

  /**
   * Appends one feed record per transition, with ids allocated from the
   * position row in this transaction (so, in commit order; see lockFeed).
   */
  async appendChanges(
    tx: Db,
    transitions: readonly Transition[],
    quarantinedBy: string | null,
    ts: number,
  ): Promise<void> {
    if (transitions.length === 0) return;
    const last = await allocateStreamIds(tx, "quarantine_stream", transitions.length);
    const first = last - transitions.length + 1;
    const records = transitions.map((t, i) => ({
      stream_id: first + i,
      origin: t.origin,
      media_id: t.mediaId,
      quarantined: quarantinedBy !== null,
      sha256: t.sha256,
      quarantined_by: quarantinedBy,
      ts,
    }));
    for (const part of chunks(records)) {
      await tx.insertInto("quarantined_media_changes").values(part).execute();
    }
  }
}

/** Kinds of room references whose media a room quarantine takes (as Synapse: not members' avatars). */
export const ROOM_CONTENT_KINDS = ["url", "thumbnail", "room_avatar"] as const;

/** Pages for the batch quarantines of a user's or a room's media, by keyset. */
export class QuarantineCandidates {
  /** Up to `limit` ids of `userId`'s unquarantined local media after `after`, by id. */
  async userMedia(db: Db, userId: string, after: string, limit: number): Promise<string[]> {
    const rows = await db
      .selectFrom("local_media_repository")
      .select("media_id")
      .where("user_id", "=", userId)
      .where("quarantined_by", "is", null)
      .where("media_id", ">", after)
      .orderBy("media_id")
      .limit(limit)
      .execute();
    return rows.map((r) => r.media_id);
  }

  /** Up to `limit` distinct media referenced by content in `roomId`, after `after`, by (origin, id). */
  async roomMedia(
    db: Db,
    roomId: string,
    after: { origin: string; mediaId: string },
    limit: number,
  ): Promise<{ origin: string; mediaId: string }[]> {
    const rows = await db
      .selectFrom("media_references")
      .select(["media_origin", "media_id"])
      .distinct()
      .where("room_id", "=", roomId)
      .where("kind", "in", ROOM_CONTENT_KINDS)
      .where((eb) =>
        eb(eb.refTuple("media_origin", "media_id"), ">", eb.tuple(after.origin, after.mediaId)),
      )
      .orderBy("media_origin")
      .orderBy("media_id")
      .limit(limit)
      .execute();
    return rows.map((r) => ({ origin: r.media_origin, mediaId: r.media_id }));
  }
}
