/**
 * The stored-hash columns of local and cached remote media (migration
 * 0010-media-hashes.ts): recording a PDQ outcome (and a late MD5), and the
 * backfill's work list — rows whose `pdq_status` is still null, read in
 * primary-key order through the partial `*_hash_todo` indexes.
 *
 * Every write is conditional on `pdq_status IS NULL`: the first outcome
 * recorded wins, so the hashing queue and the backfill racing for one item
 * (in one process or several) write it once, and neither overwrites the
 * other. MD5 is only ever filled in where it is null (`coalesce`).
 */
import { sql } from "kysely";
import type { Database, Db } from "../db/database.js";
import type { PdqColumns } from "../domain/media-hashes.js";
import { appendPdqLog, lockPdqLog } from "./pdq-hash-log-repository.js";

/** One media item whose hashes are computed: local (maybe URL-preview) or cached remote. */
export type HashSubject =
  | { readonly kind: "local"; readonly mediaId: string }
  | { readonly kind: "remote"; readonly origin: string; readonly mediaId: string };

/** A row of the backfill's work list. */
export interface HashTodo {
  readonly subject: HashSubject;
  readonly mediaType: string | null;
  readonly mediaLength: number;
  readonly md5: string | null;
  /** `url_cache` of local media (its bytes live under `url_cache/`); null for remote. */
  readonly urlCache: string | null;
  /** Remote media only. */
  readonly filesystemId: string | null;
}

export class MediaHashRepository {
  constructor(private readonly database: Database) {}

  /**
   * Records a PDQ outcome (and `md5` where the row has none) unless the row
   * already has one; false when nothing was written (recorded before, or the
   * row is gone).
   */
  async record(
    subject: HashSubject,
    pdq: PdqColumns,
    md5: string | null = null,
    db: Db = this.database.db,
  ): Promise<boolean> {
    // A hash is appended to the PDQ hash log in the same transaction
    // (src/repositories/pdq-hash-log-repository.ts); its lock is taken first.
    if (!db.isTransaction)
      return this.database.transaction((tx) => this.record(subject, pdq, md5, tx));
    await lockPdqLog(db);
    const set = { ...pdq, md5: sql<string | null>`coalesce(md5, ${md5})` };
    const result =
      subject.kind === "local"
        ? await db
            .updateTable("local_media_repository")
            .set(set)
            .where("media_id", "=", subject.mediaId)
            .where("pdq_status", "is", null)
            .executeTakeFirst()
        : await db
            .updateTable("remote_media_cache")
            .set(set)
            .where("media_origin", "=", subject.origin)
            .where("media_id", "=", subject.mediaId)
            .where("pdq_status", "is", null)
            .executeTakeFirst();
    const written = Number(result.numUpdatedRows) === 1;
    if (written && pdq.pdq !== null) {
      await appendPdqLog(
        db,
        subject.kind === "local" ? null : subject.origin,
        subject.mediaId,
        pdq.pdq,
      );
    }
    return written;
  }

  /**
   * Up to `limit` complete local rows without a PDQ outcome, created at or
   * before `createdBefore`, after `after` in `media_id` order. Pending and
   * claimed async uploads (no bytes yet) are passed over.
   */
  async localTodo(after: string, limit: number, createdBefore: number): Promise<HashTodo[]> {
    const rows = await this.database.db
      .selectFrom("local_media_repository")
      .select(["media_id", "media_type", "media_length", "md5", "url_cache"])
      .where("pdq_status", "is", null)
      .where("media_id", ">", after)
      .where("media_length", ">=", 0)
      .where("created_ts", "<=", createdBefore)
      .orderBy("media_id")
      .limit(limit)
      .execute();
    return rows.map((r) => ({
      subject: { kind: "local", mediaId: r.media_id },
      mediaType: r.media_type,
      mediaLength: Number(r.media_length),
      md5: r.md5,
      urlCache: r.url_cache,
      filesystemId: null,
    }));
  }

  /** Like `localTodo`, for the remote cache in `(media_origin, media_id)` order. */
  async remoteTodo(
    after: { origin: string; mediaId: string },
    limit: number,
    createdBefore: number,
  ): Promise<HashTodo[]> {
    const rows = await this.database.db
      .selectFrom("remote_media_cache")
      .select(["media_origin", "media_id", "media_type", "media_length", "md5", "filesystem_id"])
      .where("pdq_status", "is", null)
      // A row-value comparison: one range scan of the (origin, id) todo index.
      .where((eb) =>
        eb(eb.refTuple("media_origin", "media_id"), ">", eb.tuple(after.origin, after.mediaId)),
      )
      .where("created_ts", "<=", createdBefore)
      .orderBy("media_origin")
      .orderBy("media_id")
      .limit(limit)
      .execute();
    return rows.map((r) => ({
      subject: { kind: "remote", origin: r.media_origin, mediaId: r.media_id },
      mediaType: r.media_type,
      mediaLength: Number(r.media_length ?? 0),
      md5: r.md5,
      urlCache: null,
      filesystemId: r.filesystem_id,
    }));
  }

  /** Rows still without a PDQ outcome (the backfill's progress bar total). */
  async countTodo(db: Db): Promise<number> {
    let total = 0;
    for (const table of ["local_media_repository", "remote_media_cache"] as const) {
      const row = await db
        .selectFrom(table)
        .select((eb) => eb.fn.countAll<number>().as("n"))
        .where("pdq_status", "is", null)
        .executeTakeFirstOrThrow();
      total += Number(row.n);
    }
    return total;
  }
}
