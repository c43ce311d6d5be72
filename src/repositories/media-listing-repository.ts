/**
 * The SQL of mxcd's server-wide media listing (`GET /_mxcd/admin/v1/media`,
 * docs/admin-api.md "Server-wide media listing"): pages of local and of
 * cached remote media, newest first, and the count and size of a filter.
 *
 * Design notes:
 * - The order is (created_ts, then local before remote, then origin, then
 *   media_id), all descending, so each table is walked down one index that
 *   holds its part of the key (migration 0015): `local_media_created_id`
 *   (created_ts, media_id), `remote_media_created_id` (created_ts,
 *   media_origin, media_id), and for the filters that pin a leading column
 *   `local_media_user_created_id`, `remote_media_origin_created_id`, and the
 *   partial `..._quarantined_created` indexes. The service merges a page of
 *   each table; neither query sorts or counts its table.
 * - Comparing a local row with a remote one never compares text ("local
 *   first" on equal timestamps), so the order needs no agreement between
 *   JavaScript and a database collation: all text comparisons happen in SQL,
 *   in the same collation as the index that orders them.
 * - The other filters (type, size, protection, quarantine state) filter the
 *   walk: a page costs the rows the walk passes until `limit` match.
 * - `room_id` reads the room's references (`media_references_room`) first
 *   and sorts that room's media: its cost grows with the room, not the table.
 */
import {
  type Expression,
  type ExpressionBuilder,
  type SelectQueryBuilder,
  type SqlBool,
  sql,
} from "kysely";
import type { Database } from "../db/database.js";
import type { DatabaseSchema } from "../db/schema.js";
import { storedBlurPreview } from "../domain/blur-preview-value.js";
import { keysetPage, orderByKey } from "./keyset.js";
import {
  type LocalMedia,
  type RemoteMedia,
  toLocalMedia,
  toRemoteMedia,
} from "./media-repository.js";

/** What the listing selects; every field optional, all combined with AND. */
export interface MediaListFilter {
  /** Uploader (local media only). */
  readonly userId?: string;
  /** Media an event of this room references. */
  readonly roomId?: string;
  /** `local`: this server's media; `remote`: the cache of that server's media. */
  readonly origin?: { readonly local: true } | { readonly local: false; readonly name: string };
  /** `media_type` equal to `exact`, or starting with `prefix`. */
  readonly mediaType?: { readonly exact: string } | { readonly prefix: string };
  /** Bytes, inclusive. */
  readonly minSize?: number;
  readonly maxSize?: number;
  readonly quarantined?: boolean;
  /** Protected from quarantine (`safe_from_quarantine`); remote media never is. */
  readonly protected?: boolean;
}

/** The position of the last item of a page; `origin` null for local media. */
export interface MediaListCursor {
  readonly ts: number;
  readonly origin: string | null;
  readonly mediaId: string;
}

/** How many media a filter selects and their bytes (unknown lengths count 0). */
export interface MediaListSummary {
  readonly count: number;
  readonly totalBytes: number;
}

/**
 * A listed local item: its row and its blur preview (migration 0018), which
 * only the listing reads (the metadata cache's LocalMedia holds none).
 */
export type ListedLocalMedia = LocalMedia & { readonly blurPreview: string | null };

/** `media_length` of a row whose upload is streaming now (media-repository.ts). */
const CLAIMED = -1;

type LocalEb = ExpressionBuilder<DatabaseSchema, "local_media_repository">;
type RemoteEb = ExpressionBuilder<DatabaseSchema, "remote_media_cache">;
/** A FROM with nothing selected yet (`#localFrom`, `#remoteFrom`). */
// biome-ignore lint/complexity/noBannedTypes: Kysely's own type for "no columns selected"
type LocalSelect = SelectQueryBuilder<DatabaseSchema, "local_media_repository", {}>;
// biome-ignore lint/complexity/noBannedTypes: as above
type RemoteSelect = SelectQueryBuilder<DatabaseSchema, "remote_media_cache", {}>;

export class MediaListingRepository {
  constructor(
    private readonly database: Database,
    private readonly serverName: string,
  ) {}

  /** Whether `filter` can select local media / cached remote media at all. */
  sides(filter: MediaListFilter): { local: boolean; remote: boolean } {
    return {
      local: filter.origin?.local !== false,
      remote: filter.origin?.local !== true && filter.userId === undefined && !filter.protected,
    };
  }

  /** Up to `limit` local media after `after`, newest first, with their blur previews. */
  async localPage(
    filter: MediaListFilter,
    after: MediaListCursor | null,
    limit: number,
  ): Promise<ListedLocalMedia[]> {
    const rows = await this.localQuery(filter, after, limit).execute();
    return rows.map((row) => ({
      ...toLocalMedia(row),
      blurPreview: storedBlurPreview(row.blur_preview),
    }));
  }

  /** The query of `localPage` (built, not run: test/mxcd-media-list-plan.test.ts explains it). */
  localQuery(filter: MediaListFilter, after: MediaListCursor | null, limit: number) {
    const base = this.#localFrom(filter)
      .selectAll("local_media_repository")
      .where((eb) => eb.and(this.#localTerms(eb, filter)));
    const key = ["local_media_repository.created_ts", "local_media_repository.media_id"] as const;
    // After a remote item, every local item of its millisecond came before it.
    const query =
      after === null || after.origin === null
        ? keysetPage(base, key, after && [after.ts, after.mediaId], "desc")
        : orderByKey(base.where(key[0], "<", after.ts), key, "desc");
    return query.limit(limit);
  }

  /** Up to `limit` cached remote media after `after`, newest first. */
  async remotePage(
    filter: MediaListFilter,
    after: MediaListCursor | null,
    limit: number,
  ): Promise<RemoteMedia[]> {
    const rows = await this.remoteQuery(filter, after, limit).execute();
    return rows.map(toRemoteMedia);
  }

  /** The query of `remotePage` (built, not run). */
  remoteQuery(filter: MediaListFilter, after: MediaListCursor | null, limit: number) {
    const base = this.#remoteFrom(filter)
      .selectAll("remote_media_cache")
      .where((eb) => eb.and(this.#remoteTerms(eb, filter)));
    const key = [
      "remote_media_cache.created_ts",
      "remote_media_cache.media_origin",
      "remote_media_cache.media_id",
    ] as const;
    // After a local item, every remote item of its millisecond comes after it.
    const query =
      after === null || after.origin !== null
        ? keysetPage(base, key, after && [after.ts, after.origin as string, after.mediaId], "desc")
        : orderByKey(base.where(key[0], "<=", after.ts), key, "desc");
    return query.limit(limit);
  }

  /**
   * `local_media_repository`, or with `room_id` the room's distinct local
   * media joined to it. The CROSS JOIN makes SQLite read the room's
   * references first (its planner would otherwise walk the whole created_ts
   * index, testing each row against the room); PostgreSQL plans it as any
   * inner join. The joined query is typed as the plain table's: the room
   * side adds only `room.media_id`, and every column read below the FROM is
   * either unique to the media table or qualified with its name.
   */
  #localFrom(filter: MediaListFilter): LocalSelect {
    const db = this.database.db;
    const table = db.selectFrom("local_media_repository");
    if (filter.roomId === undefined) return table;
    const room = db
      .selectFrom("media_references")
      .select("media_id")
      .distinct()
      .where("room_id", "=", filter.roomId)
      .where("media_origin", "=", this.serverName)
      .as("room");
    const joined = db
      .selectFrom(room)
      .crossJoin("local_media_repository")
      .whereRef("local_media_repository.media_id", "=", "room.media_id");
    return joined as unknown as LocalSelect;
  }

  /** `remote_media_cache`, or the room's distinct remote media joined to it (see `#localFrom`). */
  #remoteFrom(filter: MediaListFilter): RemoteSelect {
    const db = this.database.db;
    const table = db.selectFrom("remote_media_cache");
    if (filter.roomId === undefined) return table;
    const room = db
      .selectFrom("media_references")
      .select(["media_origin", "media_id"])
      .distinct()
      .where("room_id", "=", filter.roomId)
      .where("media_origin", "!=", this.serverName)
      .as("room");
    const joined = db
      .selectFrom(room)
      .crossJoin("remote_media_cache")
      .whereRef("remote_media_cache.media_origin", "=", "room.media_origin")
      .whereRef("remote_media_cache.media_id", "=", "room.media_id");
    return joined as unknown as RemoteSelect;
  }

  /** The count and bytes of the media `filter` selects (two COUNT/SUM over an index range). */
  async summary(filter: MediaListFilter): Promise<MediaListSummary> {
    const sides = this.sides(filter);
    const bytes = sql<
      number | string | null
    >`sum(case when media_length > 0 then media_length else 0 end)`.as("bytes");
    let count = 0;
    let totalBytes = 0;
    if (sides.local) {
      const row = await this.#localFrom(filter)
        .select((eb) => [eb.fn.countAll<number | string>().as("n"), bytes])
        .where((eb) => eb.and(this.#localTerms(eb, filter)))
        .executeTakeFirstOrThrow();
      count += Number(row.n);
      totalBytes += Number(row.bytes ?? 0);
    }
    if (sides.remote) {
      const row = await this.#remoteFrom(filter)
        .select((eb) => [eb.fn.countAll<number | string>().as("n"), bytes])
        .where((eb) => eb.and(this.#remoteTerms(eb, filter)))
        .executeTakeFirstOrThrow();
      count += Number(row.n);
      totalBytes += Number(row.bytes ?? 0);
    }
    return { count, totalBytes };
  }

  #localTerms(eb: LocalEb, filter: MediaListFilter): Expression<SqlBool>[] {
    const terms: Expression<SqlBool>[] = [...this.#commonTerms(eb, filter)];
    if (filter.userId !== undefined) terms.push(eb("user_id", "=", filter.userId));
    if (filter.protected !== undefined) {
      terms.push(eb("safe_from_quarantine", "=", filter.protected));
    }
    return terms;
  }

  #remoteTerms(eb: RemoteEb, filter: MediaListFilter): Expression<SqlBool>[] {
    const terms: Expression<SqlBool>[] = [...this.#commonTerms(eb, filter)];
    if (filter.origin?.local === false) {
      terms.push(eb("remote_media_cache.media_origin", "=", filter.origin.name));
    }
    return terms;
  }

  /** The terms on columns both tables have. */
  #commonTerms(eb: LocalEb | RemoteEb, filter: MediaListFilter): Expression<SqlBool>[] {
    // The two builders differ only in their table; these columns are in both.
    const e = eb as LocalEb;
    const terms: Expression<SqlBool>[] = [];
    const type = filter.mediaType;
    if (type && "exact" in type) terms.push(e("media_type", "=", type.exact));
    if (type && "prefix" in type) {
      // substr, not LIKE: no wildcards to escape, and it keeps the planner on
      // the created_ts walk rather than a media_type range that must be sorted.
      terms.push(e(sql`substr(media_type, 1, ${sql.lit(type.prefix.length)})`, "=", type.prefix));
    }
    if (filter.minSize !== undefined) terms.push(e("media_length", ">=", filter.minSize));
    if (filter.maxSize !== undefined) {
      terms.push(e("media_length", "<=", filter.maxSize), e("media_length", ">", CLAIMED));
    }
    if (filter.quarantined === true) terms.push(e("quarantined_by", "is not", null));
    if (filter.quarantined === false) terms.push(e("quarantined_by", "is", null));
    return terms;
  }
}
