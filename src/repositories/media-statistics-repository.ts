/**
 * Per-user media usage (`GET /_synapse/admin/v1/statistics/users/media`, A15):
 * one GROUP BY over the local media table joined to profiles, as Synapse
 * does. Its cost grows with the table — the API asks for totals over every
 * user, so no index can bound it; it is an occasional admin report, not a
 * hot path.
 */
import { type Expression, type SqlBool, sql } from "kysely";
import type { Database } from "../db/database.js";

/** A15's `order_by` values, in the order Synapse's error message lists them. */
export const MEDIA_STATISTICS_ORDER_BY = [
  "media_length",
  "media_count",
  "user_id",
  "displayname",
] as const;
export type MediaStatisticsOrderBy = (typeof MEDIA_STATISTICS_ORDER_BY)[number];

export interface MediaStatisticsQuery {
  readonly from: number;
  readonly limit: number;
  /** Only media created at or after this time (ms). */
  readonly fromTs: number;
  /** Only media created at or before this time (ms). */
  readonly untilTs?: number;
  /** Case-insensitive substring of the user id's localpart or of the display name. */
  readonly searchTerm?: string;
  readonly orderBy: MediaStatisticsOrderBy;
  readonly direction: "f" | "b";
}

export interface UserMediaUsage {
  readonly userId: string;
  readonly displayname: string | null;
  /** Every row of the user, pending uploads included. */
  readonly mediaCount: number;
  /** Bytes of content present (pending uploads count 0). */
  readonly mediaLength: number;
}

export class MediaStatisticsRepository {
  constructor(private readonly database: Database) {}

  /** One page of users with their media usage, and how many users match. */
  async usage(query: MediaStatisticsQuery): Promise<{ users: UserMediaUsage[]; total: number }> {
    const grouped = this.database.db
      .selectFrom("local_media_repository as m")
      .leftJoin("profiles as p", "p.user_id", "m.user_id")
      .where("m.user_id", "is not", null)
      .where("m.created_ts", ">=", query.fromTs)
      .$if(query.untilTs !== undefined, (q) => q.where("m.created_ts", "<=", query.untilTs!))
      .$if(query.searchTerm !== undefined, (q) => q.where(matches(query.searchTerm!)))
      .groupBy(["m.user_id", "p.displayname"]);
    const { total } = await this.database.db
      .selectFrom(grouped.select("m.user_id").as("g"))
      .select((eb) => eb.fn.countAll<number>().as("total"))
      .executeTakeFirstOrThrow();
    const desc = query.direction === "b";
    const rows = await grouped
      .select([
        "m.user_id",
        "p.displayname",
        (eb) => eb.fn.countAll<number>().as("media_count"),
        // A claimed row (-1, upload streaming) and a pending one (NULL) hold no bytes yet.
        sql<number>`coalesce(sum(case when m.media_length > 0 then m.media_length else 0 end), 0)`.as(
          "media_length",
        ),
      ])
      .orderBy(ORDER_COLUMN[query.orderBy], (ob) => {
        const ordered = desc ? ob.desc() : ob.asc();
        if (query.orderBy !== "displayname") return ordered;
        return desc ? ordered.nullsFirst() : ordered.nullsLast();
      })
      .orderBy("m.user_id", "asc")
      .limit(query.limit)
      .offset(query.from)
      .execute();
    return {
      users: rows.map((r) => ({
        userId: r.user_id!,
        displayname: r.displayname,
        mediaCount: Number(r.media_count),
        mediaLength: Number(r.media_length),
      })),
      total: Number(total),
    };
  }
}

const ORDER_COLUMN = {
  media_length: "media_length",
  media_count: "media_count",
  user_id: "m.user_id",
  displayname: "p.displayname",
} as const;

/**
 * Synapse's filter — `user_id LIKE '@%term%:%' OR displayname LIKE '%term%'` —
 * made case-insensitive on both engines (Synapse is case-sensitive on
 * PostgreSQL only), with LIKE wildcards in the term matched literally.
 */
function matches(term: string): Expression<SqlBool> {
  const escaped = term.toLowerCase().replace(/[\\%_]/g, (c) => `\\${c}`);
  const userPattern = `@%${escaped}%:%`;
  const namePattern = `%${escaped}%`;
  return sql<SqlBool>`(lower(m.user_id) like ${userPattern} escape '\\' or lower(p.displayname) like ${namePattern} escape '\\')`;
}
