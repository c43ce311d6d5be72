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
 * The rows and the live reservations are read by one statement (one
 * snapshot): an upload that lands swaps its reservation for its row in one
 * commit without the lock, so two reads could each miss it.
 *
 * The window sums are one pass over the user's rows (an index-only range
 * scan of `local_media_upload_quota`, migration 0013, when they are few
 * among many), one `sum(...) filter (...)` per window as SQLite's statement
 * has one `sum(case ...)`: a statement with one sum per window, built from
 * the windows' subscripts and run with EXECUTE (planned per call, with its
 * values). SQLite needs nothing here: its one connection runs the
 * repository's single statement atomically.
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
      room bigint;
      granted bigint;
    begin
      if current_setting('transaction_isolation') <> 'read committed' then
        raise exception 'mxcd_reserve_upload needs READ COMMITTED (its reads must follow its lock)';
      end if;
      -- Held until this call's transaction commits: one check at a time per user.
      perform pg_advisory_xact_lock(lock_key);
      -- From here each statement reads a snapshot taken after the lock was granted.
      -- The smallest room of all windows, less the live reservations, in ONE
      -- statement: the rows and the reservations must be read from one
      -- snapshot, because an upload that lands (its row in, its reservation
      -- out, one commit) does not take the lock; read apart, a landing
      -- committed between the two reads would be counted neither as a row
      -- nor as a reservation. One pass over the user's rows; the text is
      -- built from the windows' subscripts only (no value), and planned with
      -- the call's values (the user's rows may be few or all).
      execute format(
        'select least(%s) - (select coalesce(sum(bytes), 0) from media_upload_reservations'
          ' where user_id = $1 and expires_ts > $5 and reservation_id <> $6)'
          ' from local_media_repository'
          ' where user_id = $1 and created_ts > $2 and url_cache is null and media_length > 0',
        (select string_agg(format(
           '$4[%1$s] - coalesce(sum(media_length) filter (where created_ts > $3[%1$s]), 0)', i), ', ')
         from generate_subscripts(since_ts, 1) as i))
      into room
      using owner_user, (select min(s) from unnest(since_ts) as s), since_ts, max_bytes,
        now_ts, reservation;
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
