/**
 * Running totals of each user's uploaded bytes per time bucket, so the
 * upload quota's window sums (docs/media.md "Upload limits") cost the same
 * whatever the number of the user's uploads in the windows (issue 17).
 *
 * `local_media_upload_totals` holds, per user, the bytes of the rows that
 * count (as UploadQuotaRepository's module note: `user_id` set,
 * `url_cache IS NULL`, `media_length > 0`) summed per bucket of `created_ts`,
 * at three spans: a minute, an hour and a day (`span` in ms; `bucket_ts` the
 * bucket's start, floored, so a day's buckets are whole hours and an hour's
 * whole minutes). A window "created after `since`" is then the day buckets
 * after since's day, the hour buckets after since's hour inside that day,
 * the minute buckets after since's minute inside that hour, and an exact
 * scan of the rows in since's own minute (index `local_media_upload_quota`,
 * migration 0013): at most (days of the window + 23 + 59) bucket rows and
 * one minute of the user's uploads.
 *
 * Triggers keep the totals, in the transaction of the row's change, so every
 * write path (upload, pending → stored, delete, purge, retention, the
 * Synapse importer, tests that insert rows) keeps them exact without a line
 * of application code: AFTER INSERT adds a counted row, AFTER DELETE takes
 * it away, AFTER UPDATE OF the four columns that decide what counts takes
 * the old row away and adds the new one (a row that moves between users or
 * buckets, or is stored, or turns into a URL preview). An upload's row and
 * its reservation's end and its totals are one commit: the quota check,
 * which reads all three in one statement, counts it once.
 *
 * Bucket rows are never deleted (a bucket emptied by deletes keeps 0): at
 * most three per minute in which a user uploaded, far fewer than the rows.
 *
 * The totals are filled from the existing rows here, in the transaction that
 * creates the triggers (PostgreSQL: the migration's; SQLite: one opened
 * here, as Kysely runs SQLite migrations outside a transaction): a write by
 * another process is either before it (summed) or after it (a trigger's),
 * never both, never neither. It is an aggregate in one pass over the
 * rows, not a job: the totals must be whole the moment the check reads
 * them. Inserted in key order (PostgreSQL: 23 s → 8 s). Measured on
 * 1,000,000 rows of 1,000 users over 14 months (2.4 million bucket rows):
 * 3–4 s on SQLite, 8 s on PostgreSQL, writes to the media table waiting
 * meanwhile (on PostgreSQL, for the triggers' table lock).
 *
 * The spans are fixed here; UploadQuotaRepository reads the same three.
 */
import { type Kysely, sql } from "kysely";
import type { MigrationContext } from "./migration.js";

/** Bucket spans in ms: a minute, an hour, a day. */
const SPANS = [60_000, 3_600_000, 86_400_000] as const;

export async function up(db: Kysely<unknown>, context: MigrationContext): Promise<void> {
  if (context.engine === "postgres") {
    await create(db, context);
  } else {
    await db.transaction().execute((tx) => create(tx, context));
  }
}

async function create(db: Kysely<unknown>, { engine }: MigrationContext): Promise<void> {
  await db.schema
    .createTable("local_media_upload_totals")
    .addColumn("user_id", "text", (c) => c.notNull())
    .addColumn("span", "bigint", (c) => c.notNull())
    .addColumn("bucket_ts", "bigint", (c) => c.notNull())
    .addColumn("bytes", "bigint", (c) => c.notNull())
    .addPrimaryKeyConstraint("local_media_upload_totals_pk", ["user_id", "span", "bucket_ts"])
    // SQLite: the primary key is the table (one b-tree, not a table and an index).
    .$call((t) => (engine === "sqlite" ? t.modifyEnd(sql`without rowid`) : t))
    .execute();
  if (engine === "postgres") {
    await postgresTriggers(db);
    await postgresReserve(db);
  } else {
    await sqliteTriggers(db);
  }
  const spans = sql.raw(SPANS.map((s) => `select ${s} as span`).join(" union all "));
  await sql`
    insert into local_media_upload_totals (user_id, span, bucket_ts, bytes)
    select user_id, s.span, created_ts - ((created_ts % s.span) + s.span) % s.span, sum(media_length)
    from local_media_repository cross join (${spans}) as s
    where user_id is not null and url_cache is null and media_length > 0
    group by user_id, s.span, created_ts - ((created_ts % s.span) + s.span) % s.span
    order by 1, 2, 3`.execute(db);
}

/** `ts` floored to a multiple of `span` (`%` truncates towards 0 on both engines). */
function floored(ts: string, span: number) {
  return `${ts} - ((${ts} % ${span}) + ${span}) % ${span}`;
}

/** The upsert adding `delta` to `row`'s three buckets (`row`: new or old). */
function addToBuckets(row: "new" | "old", delta: string, engine: "sqlite" | "postgres"): string {
  const values = SPANS.map(
    (s) => `(${row}.user_id, ${s}, ${floored(`${row}.created_ts`, s)}, ${delta})`,
  );
  // PostgreSQL names the conflicting row by its table; SQLite by the bare column.
  const current = engine === "postgres" ? "local_media_upload_totals.bytes" : "bytes";
  return `insert into local_media_upload_totals (user_id, span, bucket_ts, bytes)
    values ${values.join(", ")}
    on conflict (user_id, span, bucket_ts) do update set bytes = ${current} + excluded.bytes`;
}

/** Whether `row` counts towards its user's quota (the module note of UploadQuotaRepository). */
function counts(row: "new" | "old"): string {
  return `${row}.user_id is not null and ${row}.url_cache is null and ${row}.media_length > 0`;
}

/** The columns whose change can change what a row counts. */
const DECIDING = "user_id, created_ts, media_length, url_cache";

async function sqliteTriggers(db: Kysely<unknown>): Promise<void> {
  const triggers = [
    ["insert", "insert", "new", "new.media_length"],
    ["delete", "delete", "old", "-old.media_length"],
    ["update_old", `update of ${DECIDING}`, "old", "-old.media_length"],
    ["update_new", `update of ${DECIDING}`, "new", "new.media_length"],
  ] as const;
  for (const [name, event, row, delta] of triggers) {
    await sql
      .raw(`create trigger local_media_upload_totals_${name}
        after ${event} on local_media_repository
        when ${counts(row)}
        begin
          ${addToBuckets(row, delta, "sqlite")};
        end`)
      .execute(db);
  }
}

async function postgresTriggers(db: Kysely<unknown>): Promise<void> {
  await sql
    .raw(`create function mxcd_upload_totals() returns trigger
    language plpgsql
    as $body$
    begin
      if tg_op <> 'INSERT' then
        if ${counts("old")} then
          ${addToBuckets("old", "-old.media_length", "postgres")};
        end if;
      end if;
      if tg_op <> 'DELETE' then
        if ${counts("new")} then
          ${addToBuckets("new", "new.media_length", "postgres")};
        end if;
      end if;
      return null;
    end
    $body$`)
    .execute(db);
  await sql
    .raw(`create trigger local_media_upload_totals_insert
    after insert on local_media_repository for each row
    when (${counts("new")})
    execute function mxcd_upload_totals()`)
    .execute(db);
  await sql
    .raw(`create trigger local_media_upload_totals_delete
    after delete on local_media_repository for each row
    when (${counts("old")})
    execute function mxcd_upload_totals()`)
    .execute(db);
  // Only when a deciding column changed value (an UPDATE OF fires on any SET of it).
  const changed = DECIDING.split(", ")
    .map((c) => `old.${c} is distinct from new.${c}`)
    .join(" or ");
  await sql
    .raw(`create trigger local_media_upload_totals_update
    after update of ${DECIDING} on local_media_repository for each row
    when (${changed})
    execute function mxcd_upload_totals()`)
    .execute(db);
}

/**
 * `mxcd_reserve_upload` (migration 0016) reading the totals: same
 * arguments, same lock-then-read (see 0016), and still the rows, the totals
 * and the live reservations in ONE statement, one snapshot (an upload's
 * row, its totals and its reservation's end are one commit). Per window the
 * sum of UploadQuotaRepository's `usedSince`, its bounds computed here. A
 * static statement: its work no longer depends on the user's rows, so a
 * generic plan serves every call.
 */
async function postgresReserve(db: Kysely<unknown>): Promise<void> {
  const [minute, hour, day] = SPANS;
  const buckets = (span: number, after: string, before?: string) => `(
    select coalesce(sum(bytes), 0) from local_media_upload_totals t
    where t.user_id = owner_user and t.span = ${span} and t.bucket_ts > ${after}
    ${before === undefined ? "" : `and t.bucket_ts < ${before}`})`;
  await sql
    .raw(`
    create or replace function mxcd_reserve_upload(
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
      -- From here each statement reads a snapshot taken after the lock was
      -- granted. The smallest room of all windows less the live
      -- reservations, in ONE statement (one snapshot): see migration 0016.
      select min(w.max - (
          (select coalesce(sum(m.media_length), 0) from local_media_repository m
           where m.user_id = owner_user and m.created_ts > w.since and m.created_ts < w.minute + ${minute}
             and m.url_cache is null and m.media_length > 0)
          + ${buckets(minute, "w.minute", `w.hour + ${hour}`)}
          + ${buckets(hour, "w.hour", `w.day + ${day}`)}
          + ${buckets(day, "w.day")}))
        - (select coalesce(sum(r.bytes), 0) from media_upload_reservations r
           where r.user_id = owner_user and r.expires_ts > now_ts and r.reservation_id <> reservation)
      into room
      from (
        select s.since, s.max,
          ${floored("s.since", minute)} as minute,
          ${floored("s.since", hour)} as hour,
          ${floored("s.since", day)} as day
        from unnest(since_ts, max_bytes) as s (since, max)
      ) as w;
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
    $body$`)
    .execute(db);
}
