/**
 * A user's stored bytes after a window's start, from the running totals of
 * migration 0019 (`local_media_upload_totals`, kept by triggers) and one
 * minute of rows: the SQL both engines' quota reads share.
 *
 * The bytes of the rows created after `since` are, exactly:
 *
 *   the day buckets after since's day
 * + the hour buckets after since's hour, inside since's day
 * + the minute buckets after since's minute, inside since's hour
 * + the rows after `since` inside since's minute (an index range scan of
 *   `local_media_upload_quota`, migration 0013).
 *
 * A bucket's start is its time floored to a multiple of its span, so a day
 * is whole hours and an hour whole minutes, and the four parts never overlap
 * nor leave a gap. The cost is at most (the window's days + 23 + 59) bucket
 * rows and one minute of the user's uploads, however many they have.
 */
import { type RawBuilder, sql } from "kysely";

/** The spans of migration 0019's buckets, in ms (it creates the triggers with these). */
const MINUTE = 60_000;
const HOUR = 3_600_000;
const DAY = 86_400_000;

/** How many values `windowBounds` gives per window. */
export const BOUNDS_PER_WINDOW = 7;

/** `ts` floored to a multiple of `span` (JavaScript's `%`, as SQL's, truncates towards 0). */
function floorTo(ts: number, span: number): number {
  return ts - (((ts % span) + span) % span);
}

/**
 * The bounds `usedSince` reads for a window starting after `since` (an
 * integer, ms): since, the end of its minute, its minute, the end of its
 * hour, its hour, the end of its day, its day.
 */
export function windowBounds(since: number): number[] {
  const minute = floorTo(since, MINUTE);
  const hour = floorTo(since, HOUR);
  const day = floorTo(since, DAY);
  return [since, minute + MINUTE, minute, hour + HOUR, hour, day + DAY, day];
}

/**
 * The bytes of `userId`'s counted rows created after the window whose
 * `windowBounds` are `bounds`, as one SQL expression (four scalar
 * subqueries, each one index range). Values or placeholders alike: each is
 * a parameter, none is computed with.
 */
export function usedSince(userId: unknown, bounds: readonly unknown[]): RawBuilder<number> {
  const [since, minuteEnd, minute, hourEnd, hour, dayEnd, day] = bounds;
  const buckets = (span: number, after: unknown, before?: unknown) => sql`(
    select coalesce(sum(bytes), 0) from local_media_upload_totals
    where user_id = ${userId} and span = ${sql.lit(span)} and bucket_ts > ${after}
    ${before === undefined ? sql`` : sql`and bucket_ts < ${before}`})`;
  return sql<number>`(
    (select coalesce(sum(media_length), 0) from local_media_repository
     where user_id = ${userId} and created_ts > ${since} and created_ts < ${minuteEnd}
       and url_cache is null and media_length > 0)
    + ${buckets(MINUTE, minute, hourEnd)}
    + ${buckets(HOUR, hour, dayEnd)}
    + ${buckets(DAY, day)})`;
}
