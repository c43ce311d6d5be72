/**
 * SQL of near-duplicate quarantine's provenance (`quarantine_propagations`,
 * migration 0012) and the row reads its rule re-checks inside the
 * quarantine transaction. Every method takes that transaction.
 *
 * Keys use the quarantine algorithm's convention (`origin` null = local);
 * the table stores local as `''`.
 */
import { sql } from "kysely";
import type { Db } from "../db/database.js";

/** A media item: `origin` null for local media (as `Transition`). */
export interface MediaKey {
  readonly origin: string | null;
  readonly mediaId: string;
}

/** The columns the near-duplicate rule reads from a media row. */
export interface PdqRow {
  readonly key: MediaKey;
  readonly pdq: string | null;
  readonly quarantinedBy: string | null;
  /** Local media marked safe from quarantine (remote media never is). */
  readonly protected: boolean;
}

/**
 * One PDQ hash log record (migration 0011) with its media row now:
 * `current` is the row's PDQ (null when gone or unhashed), `quarantined`
 * whether the row is quarantined.
 */
export interface LoggedHash {
  readonly streamId: number;
  readonly key: MediaKey;
  readonly pdq: string;
  readonly current: string | null;
  readonly quarantined: boolean;
}

const LOCAL = "";

function stored(origin: string | null): string {
  return origin ?? LOCAL;
}

function keyOf(origin: string, mediaId: string): MediaKey {
  return { origin: origin === LOCAL ? null : origin, mediaId };
}

export class QuarantinePropagationRepository {
  /** The row of one media item, or undefined when it is not stored. */
  async read(db: Db, key: MediaKey): Promise<PdqRow | undefined> {
    if (key.origin === null) {
      const row = await db
        .selectFrom("local_media_repository")
        .select(["pdq", "quarantined_by", "safe_from_quarantine"])
        .where("media_id", "=", key.mediaId)
        .executeTakeFirst();
      return (
        row && {
          key,
          pdq: row.pdq,
          quarantinedBy: row.quarantined_by,
          protected: Boolean(row.safe_from_quarantine),
        }
      );
    }
    const row = await db
      .selectFrom("remote_media_cache")
      .select(["pdq", "quarantined_by"])
      .where("media_origin", "=", key.origin)
      .where("media_id", "=", key.mediaId)
      .executeTakeFirst();
    return row && { key, pdq: row.pdq, quarantinedBy: row.quarantined_by, protected: false };
  }

  /** True when `target` is quarantined by propagation (has at least one source). */
  async isHeld(db: Db, target: MediaKey): Promise<boolean> {
    const row = await db
      .selectFrom("quarantine_propagations")
      .select("source_media_id")
      .where("target_origin", "=", stored(target.origin))
      .where("target_media_id", "=", target.mediaId)
      .limit(1)
      .executeTakeFirst();
    return row !== undefined;
  }

  /** Records that `target` is held by `source` (idempotent). */
  async add(db: Db, target: MediaKey, source: MediaKey, ts: number): Promise<void> {
    await db
      .insertInto("quarantine_propagations")
      .values({
        target_origin: stored(target.origin),
        target_media_id: target.mediaId,
        source_origin: stored(source.origin),
        source_media_id: source.mediaId,
        created_ts: ts,
      })
      .onConflict((oc) => oc.doNothing())
      .execute();
  }

  /** The sources holding `target`. */
  async sourcesOf(db: Db, target: MediaKey): Promise<MediaKey[]> {
    const rows = await db
      .selectFrom("quarantine_propagations")
      .select(["source_origin", "source_media_id"])
      .where("target_origin", "=", stored(target.origin))
      .where("target_media_id", "=", target.mediaId)
      .execute();
    return rows.map((r) => keyOf(r.source_origin, r.source_media_id));
  }

  /** Forgets every source of these targets (they are now quarantined, or released, directly). */
  async dropTargets(db: Db, targets: readonly MediaKey[]): Promise<void> {
    for (const t of targets) {
      await db
        .deleteFrom("quarantine_propagations")
        .where("target_origin", "=", stored(t.origin))
        .where("target_media_id", "=", t.mediaId)
        .execute();
    }
  }

  /** Drops every row of these sources; returns their targets (distinct). */
  async dropSources(db: Db, sources: readonly MediaKey[]): Promise<MediaKey[]> {
    const targets = new Map<string, MediaKey>();
    for (const s of sources) {
      const rows = await db
        .deleteFrom("quarantine_propagations")
        .where("source_origin", "=", stored(s.origin))
        .where("source_media_id", "=", s.mediaId)
        .returning(["target_origin", "target_media_id"])
        .execute();
      for (const r of rows) {
        targets.set(
          `${r.target_origin}/${r.target_media_id}`,
          keyOf(r.target_origin, r.target_media_id),
        );
      }
    }
    return [...targets.values()];
  }

  /** Every stored media item with one of these SHA-256 hashes (the copies of an image). */
  async withHashes(db: Db, hashes: readonly string[]): Promise<MediaKey[]> {
    if (hashes.length === 0) return [];
    const keys: MediaKey[] = [];
    for (let i = 0; i < hashes.length; i += 500) {
      const part = hashes.slice(i, i + 500);
      const local = await db
        .selectFrom("local_media_repository")
        .select("media_id")
        .where("sha256", "in", part)
        .execute();
      for (const r of local) keys.push({ origin: null, mediaId: r.media_id });
      const remote = await db
        .selectFrom("remote_media_cache")
        .select(["media_origin", "media_id"])
        .where("sha256", "in", part)
        .execute();
      for (const r of remote) keys.push({ origin: r.media_origin, mediaId: r.media_id });
    }
    return keys;
  }

  /**
   * A media item was deleted: it no longer needs its own provenance (rows
   * where it is the target). Rows where it is the source stay: they keep
   * its targets held, never sources (docs/trust-and-safety.md, rule 8).
   */
  async forgetTarget(db: Db, key: MediaKey): Promise<void> {
    await this.dropTargets(db, [key]);
  }

  /** The PDQ hash log's newest stream id (0 when empty): what has committed so far. */
  async logEnd(db: Db): Promise<number> {
    const row = await db
      .selectFrom("pdq_hash_position")
      .select("position")
      .where("id", "=", 1)
      .executeTakeFirst();
    return Number(row?.position ?? 0);
  }

  /**
   * Log records with `after < stream_id <= upTo`, oldest first, at most
   * `limit`, each with its media row now (one range scan, two joins).
   */
  async logPage(db: Db, after: number, upTo: number, limit: number): Promise<LoggedHash[]> {
    const rows = await db
      .selectFrom("pdq_hash_log as g")
      .leftJoin("local_media_repository as l", (join) =>
        join.on("g.media_origin", "is", null).onRef("l.media_id", "=", "g.media_id"),
      )
      .leftJoin("remote_media_cache as r", (join) =>
        join.onRef("r.media_origin", "=", "g.media_origin").onRef("r.media_id", "=", "g.media_id"),
      )
      .select((eb) => [
        "g.stream_id",
        "g.media_origin",
        "g.media_id",
        "g.pdq",
        eb.fn.coalesce("l.pdq", "r.pdq").as("current"),
        sql<number>`case when coalesce(l.quarantined_by, r.quarantined_by) is null then 0 else 1 end`.as(
          "quarantined",
        ),
      ])
      .where("g.stream_id", ">", after)
      .where("g.stream_id", "<=", upTo)
      .orderBy("g.stream_id")
      .limit(limit)
      .execute();
    return rows.map((r) => ({
      streamId: Number(r.stream_id),
      key: { origin: r.media_origin, mediaId: r.media_id },
      pdq: r.pdq,
      current: r.current ?? null,
      quarantined: Number(r.quarantined) === 1,
    }));
  }

  /** Quarantined copies (same SHA-256) of an image, for inheriting provenance. */
  async quarantinedWithHash(db: Db, sha256: string): Promise<MediaKey[]> {
    const keys: MediaKey[] = [];
    const local = await db
      .selectFrom("local_media_repository")
      .select("media_id")
      .where("sha256", "=", sha256)
      .where("quarantined_by", "is not", null)
      .execute();
    for (const r of local) keys.push({ origin: null, mediaId: r.media_id });
    const remote = await db
      .selectFrom("remote_media_cache")
      .select(["media_origin", "media_id"])
      .where("sha256", "=", sha256)
      .where("quarantined_by", "is not", null)
      .execute();
    for (const r of remote) keys.push({ origin: r.media_origin, mediaId: r.media_id });
    return keys;
  }
}
