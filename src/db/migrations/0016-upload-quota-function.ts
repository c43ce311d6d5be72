/**
 * PostgreSQL only: `mxcd_reserve_upload`, the upload quota's check and
 * reservation (docs/media.md "Upload limits") as one function call, so an
 * upload with a quota pays one round trip and one commit before its body
 * instead of BEGIN, the advisory lock, the statement and COMMIT
 * (UploadQuotaRepository.reserve; issue 17).
 *
 * Why a function. The check must read the user's rows and reservations
 * AFTER taking the user's advisory lock: one statement reads one snapshot,
 * taken when it starts, so a statement that took the lock itself would count
 * from before a racer holding the lock committed. A VOLATILE plpgsql
 * function in READ COMMITTED takes a fresh snapshot for each statement it
 * runs, so its first statement takes the lock and the next ones see every
 * reservation committed before the lock was granted
 * (test/upload-quota-lock-order.test.ts holds a racer's lock to show it).
 * Under any other isolation level the snapshot would be the caller's, taken
 * before the lock: the function refuses to run there.
 *
 * The window sums are one index-only range scan of
 * `local_media_upload_quota` (migration 0013), as on SQLite: each row is
 * counted into the bucket of the windows it is inside
 * (`width_bucket` over the sorted window starts), and a window's use is the
 * sum of the buckets from its own on. SQLite needs nothing here: its one
 * connection runs the repository's single statement atomically.
 *
 * Arguments: the user's lock key (UploadQuotaRepository's), the
 * reservation id, the user, the owning process, each window's start and
 * bytes (same order), the least and most bytes to grant, now and the
 * lease's end. Returns the bytes granted, or null (nothing changed).
 */
import { type Kysely, sql } from "kysely";
import type { MigrationContext } from "./migration.js";

export async function up(db: Kysely<unknown>, context: MigrationContext): Promise<void> {
  if (context.engine !== "postgres") return;
  await sql`
    create function mxcd_reserve_upload(
      lock_key bigint, reservation text, owner_user text, owner_process text,
      since_ts bigint[], max_bytes bigint[], at_least bigint, at_most bigint,
      now_ts bigint, expires bigint
    ) returns bigint
    language plpgsql volatile
    as $body$
    declare
      starts bigint[];
      room bigint;
      granted bigint;
    begin
      if current_setting('transaction_isolation') <> 'read committed' then
        raise exception 'mxcd_reserve_upload needs READ COMMITTED (its reads must follow its lock)';
      end if;
      -- Held until this call's transaction commits: one check at a time per user.
      perform pg_advisory_xact_lock(lock_key);
      -- From here each statement reads a snapshot taken after the lock was granted.
      starts := array(select s from unnest(since_ts) as s order by s);
      with buckets as (
        select width_bucket(created_ts - 1, starts) as bucket, sum(media_length) as bytes
        from local_media_repository
        where user_id = owner_user and created_ts > starts[1]
          and url_cache is null and media_length > 0
        group by 1
      )
      select min(w.window_max - coalesce((
               select sum(b.bytes) from buckets as b
               where b.bucket >= (select count(*) from unnest(starts) as s where s <= w.window_start)
             ), 0))
      into room
      from unnest(since_ts, max_bytes) as w(window_start, window_max);
      room := room - (
        select coalesce(sum(bytes), 0) from media_upload_reservations
        where user_id = owner_user and expires_ts > now_ts and reservation_id <> reservation
      );
      if room < at_least then
        return null;
      end if;
      insert into media_upload_reservations (reservation_id, user_id, bytes, owner, expires_ts)
      values (reservation, owner_user, least(at_most, room), owner_process, expires)
      on conflict (reservation_id)
        do update set bytes = excluded.bytes, expires_ts = excluded.expires_ts
      returning bytes into granted;
      return granted;
    end
    $body$`.execute(db);
}
