/**
 * SQL of the shared leaky buckets (`rate_limit_buckets`, migration 0014).
 *
 * A bucket is stored as `empty_at`: the moment it will have leaked empty.
 * Charging `costMs` (the charge's size in milliseconds of leak) moves it to
 * `max(empty_at, now) + costMs`, allowed while that is at most
 * `now + windowMs` (the burst's size in milliseconds of leak). Each charge
 * is ONE statement (an upsert whose update is conditional, with RETURNING),
 * so processes charging the same key at once are serialised by the row lock
 * (PostgreSQL) or the write lock (SQLite), and never both spend the same
 * room. A refused charge changes nothing.
 */
import { type RawBuilder, sql } from "kysely";
import type { Database } from "../db/database.js";

/** A number as a double in SQL (PostgreSQL would infer bigint for a bare parameter). */
function double(value: number): RawBuilder<number> {
  return sql<number>`cast(${value} as double precision)`;
}

export class RateLimitBucketRepository {
  constructor(private readonly database: Database) {}

  /**
   * Charges `costMs` to the bucket if it fits within `windowMs` of `nowMs`
   * (always, with `force`); true when charged. With `force` the bucket may
   * go past the window: it then refuses until it has leaked back.
   */
  async charge(
    limiter: string,
    key: string,
    charge: { costMs: number; windowMs: number; nowMs: number; force: boolean },
  ): Promise<boolean> {
    const { costMs, windowMs, nowMs, force } = charge;
    if (!force && costMs > windowMs) return false;
    const start = sql<number>`(case when rate_limit_buckets.empty_at > ${double(nowMs)} then rate_limit_buckets.empty_at else ${double(nowMs)} end)`;
    const row = await this.database.db
      .insertInto("rate_limit_buckets")
      .values({ limiter, bucket_key: key, empty_at: nowMs + costMs })
      .onConflict((oc) => {
        const update = oc
          .columns(["limiter", "bucket_key"])
          .doUpdateSet({ empty_at: sql<number>`${start} + ${double(costMs)}` });
        return force
          ? update
          : update.where(sql<boolean>`${start} + ${double(costMs)} <= ${double(nowMs + windowMs)}`);
      })
      .returning("empty_at")
      .executeTakeFirst();
    return row !== undefined;
  }

  /** When the bucket will have leaked empty; undefined when it has no row. */
  async emptyAt(limiter: string, key: string): Promise<number | undefined> {
    const row = await this.database.db
      .selectFrom("rate_limit_buckets")
      .select("empty_at")
      .where("limiter", "=", limiter)
      .where("bucket_key", "=", key)
      .executeTakeFirst();
    return row === undefined ? undefined : Number(row.empty_at);
  }

  /** Deletes the buckets that have leaked empty by `nowMs` (the same as no row); returns how many. */
  async prune(nowMs: number): Promise<number> {
    const result = await this.database.db
      .deleteFrom("rate_limit_buckets")
      .where("empty_at", "<", nowMs)
      .executeTakeFirst();
    return Number(result.numDeletedRows);
  }
}
