/**
 * The SQL behind the media admin API's listing, deletion and statistics
 * endpoints (synapse-media-admin.md A3, A4, A12–A15).
 *
 * Design notes:
 * - Every row deletion publishes a MediaChanges after its commit, so the
 *   caches of every process forget the item (docs/deployment.md "Caches").
 * - NULL placement is PostgreSQL's on both engines (last ascending, first
 *   descending), spelled out with NULLS FIRST/LAST on nullable columns only:
 *   on NOT NULL columns the modifier would stop SQLite using the
 *   (user_id, created_ts, media_id) index for the default newest-first order.
 * - Deletion candidates are read in keyset batches ordered by an indexed
 *   timestamp and then the unique key, so a purge of any size runs in bounded
 *   memory, each batch an index range scan that starts where the last ended.
 */

import { type Expression, sql } from "kysely";
import type { MediaChanges } from "../cache/media-changes.js";
import { afterCommit } from "../db/after-commit.js";
import type { Database, Db } from "../db/database.js";
import { keysetPage } from "./keyset.js";
import { type LocalMedia, toLocalMedia } from "./media-repository.js";
import { QuarantinePropagationRepository } from "./quarantine-propagation-repository.js";

/** Stateless: the provenance rows a deletion drops. */
const propagations = new QuarantinePropagationRepository();

/** `media_length` of a row whose upload is streaming now (see media-repository.ts). */
const CLAIMED = -1;

/** A3's `order_by` values, in the order Synapse's error message lists them. */
export const USER_MEDIA_ORDER_BY = [
  "media_id",
  "upload_name",
  "created_ts",
  "last_access_ts",
  "media_length",
  "media_type",
  "quarantined_by",
  "safe_from_quarantine",
] as const;
export type UserMediaOrderBy = (typeof USER_MEDIA_ORDER_BY)[number];

/** One page of a user's media (A3, A4); `direction` "b" is descending. */
export interface UserMediaPage {
  readonly userId: string;
  readonly from: number;
  readonly limit: number;
  readonly orderBy: UserMediaOrderBy;
  readonly direction: "f" | "b";
}

/** What deletion needs to know of a local media item: its id and where its bytes live. */
export interface LocalMediaItem {
  readonly mediaId: string;
  /** Non-null for URL-preview media, whose files live under `url_cache/`. */
  readonly urlCache: string | null;
}

/** Which of A13's two "old" rules a batch walks (see `oldLocalMediaBatch`). */
export type AgeRule = "accessed" | "never_accessed";

/** The keyset position of the last candidate of a batch. */
export interface Cursor {
  readonly ts: number;
  readonly mediaId: string;
  /** Remote batches only. */
  readonly origin?: string;
}

export interface OldLocalCandidate extends LocalMediaItem {
  readonly cursor: Cursor;
}

/** A cached remote media item (A14). */
export interface RemoteCacheItem {
  readonly origin: string;
  readonly mediaId: string;
  readonly filesystemId: string;
  readonly cursor: Cursor;
}

export class MediaAdminRepository {
  constructor(
    private readonly database: Database,
    private readonly changes: MediaChanges,
  ) {}

  /** How many local media rows `userId` has (index range on (user_id, created_ts, media_id)). */
  async countUserMedia(userId: string): Promise<number> {
    const row = await this.database.db
      .selectFrom("local_media_repository")
      .select((eb) => eb.fn.countAll<number>().as("n"))
      .where("user_id", "=", userId)
      .executeTakeFirstOrThrow();
    return Number(row.n);
  }

  /** One page of a user's media; ties in the sort key go by media_id ascending. */
  async listUserMedia(page: UserMediaPage): Promise<LocalMedia[]> {
    const desc = page.direction === "b";
    const rows = await this.database.db
      .selectFrom("local_media_repository")
      .selectAll()
      .where("user_id", "=", page.userId)
      .orderBy(sortKey(page.orderBy), (ob) => {
        const ordered = desc ? ob.desc() : ob.asc();
        if (!NULLABLE.has(page.orderBy)) return ordered;
        return desc ? ordered.nullsFirst() : ordered.nullsLast();
      })
      .orderBy("media_id", "asc")
      .limit(page.limit)
      .offset(page.from)
      .execute();
    return rows.map(toLocalMedia);
  }

  /** The deletion facts of one local media item, or undefined when unknown. */
  async getLocalItem(mediaId: string): Promise<LocalMediaItem | undefined> {
    const row = await this.database.db
      .selectFrom("local_media_repository")
      .select(["media_id", "url_cache"])
      .where("media_id", "=", mediaId)
      .executeTakeFirst();
    return row && { mediaId: row.media_id, urlCache: row.url_cache };
  }

  /**
   * The next batch of A13 candidates after `after`: not quarantined, not
   * protected, `media_length > sizeGt`, and old by `rule` — "accessed":
   * `last_access_ts < beforeTs`; "never_accessed": no access and
   * `created_ts < beforeTs`. Ordered by that timestamp, then media_id.
   */
  async oldLocalMediaBatch(
    criteria: { beforeTs: number; sizeGt: number },
    rule: AgeRule,
    after: Cursor | undefined,
    limit: number,
  ): Promise<OldLocalCandidate[]> {
    const ts = rule === "accessed" ? "last_access_ts" : "created_ts";
    const candidates = this.database.db
      .selectFrom("local_media_repository")
      .select((eb) => ["media_id", "url_cache", eb.ref(ts).as("ts")])
      .where(ts, "<", criteria.beforeTs)
      .$if(rule === "never_accessed", (q) => q.where("last_access_ts", "is", null))
      .where("media_length", ">", criteria.sizeGt)
      .where("quarantined_by", "is", null)
      .where("safe_from_quarantine", "=", false);
    const rows = await keysetPage(
      candidates,
      [ts, "media_id"],
      after && [after.ts, after.mediaId],
      "asc",
    )
      .limit(limit)
      .execute();
    return rows.map((r) => ({
      mediaId: r.media_id,
      urlCache: r.url_cache,
      cursor: { ts: Number(r.ts), mediaId: r.media_id },
    }));
  }

  /**
   * Deletes a local media row and its thumbnail rows in one transaction:
   * `inTx` when given (a background job's batch), else a new one.
   */
  async deleteLocalRows(mediaId: string, inTx?: Db): Promise<void> {
    const work = async (tx: Db) => {
      await tx
        .deleteFrom("local_media_repository_thumbnails")
        .where("media_id", "=", mediaId)
        .execute();
      await tx.deleteFrom("local_media_repository").where("media_id", "=", mediaId).execute();
      // Near-duplicate provenance where it is the target goes with it (docs/trust-and-safety.md).
      await propagations.forgetTarget(tx, { origin: null, mediaId });
      afterCommit(tx, () => this.changes.publish({ kind: "local", mediaId }));
    };
    await (inTx ? work(inTx) : this.database.transaction(work));
  }

  /**
   * The next batch of A14 candidates after `after`: cached remote media not
   * quarantined with `last_access_ts < beforeTs`, ordered by
   * (last_access_ts, media_origin, media_id).
   */
  async oldRemoteMediaBatch(
    beforeTs: number,
    after: Cursor | undefined,
    limit: number,
  ): Promise<RemoteCacheItem[]> {
    const candidates = this.database.db
      .selectFrom("remote_media_cache")
      .select(["media_origin", "media_id", "filesystem_id", "last_access_ts"])
      .where("last_access_ts", "<", beforeTs)
      .where("quarantined_by", "is", null);
    const rows = await keysetPage(
      candidates,
      ["last_access_ts", "media_origin", "media_id"],
      after && [after.ts, after.origin ?? "", after.mediaId],
      "asc",
    )
      .limit(limit)
      .execute();
    return rows.map((r) => ({
      origin: r.media_origin,
      mediaId: r.media_id,
      filesystemId: r.filesystem_id,
      cursor: { ts: Number(r.last_access_ts), origin: r.media_origin, mediaId: r.media_id },
    }));
  }

  /**
   * Deletes a cached remote media row and its thumbnail rows in one
   * transaction: `inTx` when given (a background job's batch), else a new one.
   */
  async deleteRemoteRows(origin: string, mediaId: string, inTx?: Db): Promise<void> {
    const work = async (tx: Db) => {
      await tx
        .deleteFrom("remote_media_cache_thumbnails")
        .where("media_origin", "=", origin)
        .where("media_id", "=", mediaId)
        .execute();
      await tx
        .deleteFrom("remote_media_cache")
        .where("media_origin", "=", origin)
        .where("media_id", "=", mediaId)
        .execute();
      await propagations.forgetTarget(tx, { origin, mediaId });
      afterCommit(tx, () => this.changes.publish({ kind: "remote", origin, mediaId }));
    };
    await (inTx ? work(inTx) : this.database.transaction(work));
  }
}

/** Columns that may hold NULL (they get explicit NULLS FIRST/LAST). */
const NULLABLE: ReadonlySet<UserMediaOrderBy> = new Set([
  "upload_name",
  "last_access_ts",
  "media_length",
  "media_type",
  "quarantined_by",
]);

/** The sort expression of an `order_by` value; an upload in progress sorts as "no length". */
function sortKey(orderBy: UserMediaOrderBy): UserMediaOrderBy | Expression<unknown> {
  return orderBy === "media_length" ? sql`nullif(media_length, ${sql.lit(CLAIMED)})` : orderBy;
}
