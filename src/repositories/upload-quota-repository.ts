/**
 * Upload quotas (docs/media.md "Upload limits"): a user's stored bytes per
 * window and their live reservations (`media_upload_reservations`).
 *
 * Design note. The check and the reservation are one atomic step per user,
 * one round trip and one commit. On SQLite it is ONE statement that reads
 * the window sums and the live reservations and inserts the reservation only
 * if it fits (the one connection runs one statement at a time: no
 * transaction is needed). On PostgreSQL it is one call of
 * `mxcd_reserve_upload` (migration 0016): it takes a transaction-scoped
 * advisory lock keyed by the user id, which serialises the steps of every
 * process and dies with the call's transaction (never leaked), and only then
 * reads and inserts, each statement on a snapshot taken after the lock was
 * granted (a single statement could not: its one snapshot is older than any
 * lock it takes), the rows and the reservations by one statement (an upload
 * landing takes no lock, so two reads could each miss it). Either way the reads see one consistent state: an upload
 * committing its row (and deleting its reservation in the same transaction)
 * is counted once, before or after, never zero times.
 *
 * What counts (as Synapse): every local row of the user whose bytes are
 * stored (`media_length > 0`) and whose `created_ts` is inside the window,
 * quarantined media included; deleted media frees its bytes. Not counted:
 * URL-preview images (`url_cache` set — the server fetched them, the user
 * did not upload them; media-gaps §7) and ids still waiting for or
 * streaming their bytes (their reservation counts instead).
 *
 * How a window is summed (issue 17: the same cost whatever the number of
 * the user's uploads in it). Not row by row: migration 0019's triggers keep
 * the counted bytes of each user per minute, hour and day of `created_ts`
 * (`local_media_upload_totals`) in the transaction of every change to a row,
 * whatever writes it; a window is whole days, then the hours and minutes of
 * its partial first day and hour, then the rows of its partial first minute
 * (upload-window-sum.ts). An upload's row, its totals and its reservation's
 * end are one commit, and the check reads all three in one statement (one
 * snapshot): counted once, before or after, as before the totals.
 * On PostgreSQL the bucket rows are row-locked by every transaction that
 * adds to them until it commits; an upload already holds the quarantine
 * feed's lock (QuarantineService.admitLocal) from before its row to its
 * commit, so uploads, of one user or many, wait for nothing new
 * (bench/README.md, "Ninth session … `totals`").
 */
import { createHash } from "node:crypto";
import { sql } from "kysely";
import type { Database, Db } from "../db/database.js";
import { CompiledSelect } from "./compiled-select.js";
import { BOUNDS_PER_WINDOW, usedSince, windowBounds } from "./upload-window-sum.js";

/** One window of a user's quota: bytes created after `sinceTs` may total `maxBytes`. */
export interface QuotaWindow {
  readonly sinceTs: number;
  readonly maxBytes: number;
}

/** A user's usage: stored bytes per window (in the order asked) and their live reservations. */
export interface QuotaUsage {
  readonly used: readonly number[];
  readonly reservedBytes: number;
  readonly reservations: number;
}

export interface ReserveRequest {
  readonly reservationId: string;
  readonly userId: string;
  /** The process holding the reservation (it renews it). */
  readonly owner: string;
  readonly windows: readonly QuotaWindow[];
  /** Refused unless at least this many bytes fit (the reservation's new total). */
  readonly atLeast: number;
  /** Grant no more than this (the reservation's new total). */
  readonly atMost: number;
  readonly now: number;
  readonly expiresTs: number;
}

export class UploadQuotaRepository {
  /** SQLite's check-and-insert, by number of windows (see `reserveStatement`). */
  readonly #reserveStatements = new Map<number, ReserveStatement>();
  /** The reservation's end, on every upload with a quota: compiled once. */
  readonly #drop = new CompiledSelect(
    () => this.database.db,
    (reservationId: string) =>
      this.database.db
        .deleteFrom("media_upload_reservations")
        .where("reservation_id", "=", reservationId),
  );

  constructor(private readonly database: Database) {}

  /**
   * Sets the reservation's total to as much of `atMost` as every window
   * allows, if that is at least `atLeast`; returns the total granted, or
   * undefined (nothing changed) when it is not.
   *
   * One round trip either way (see the module note): on SQLite the
   * check-and-insert statement, atomic on the one connection; on PostgreSQL
   * `mxcd_reserve_upload`, which locks the user and then checks and inserts.
   * Expired reservations are not counted here and are removed by
   * `dropExpired` (the service's timer), off the upload's path.
   */
  async reserve(request: ReserveRequest): Promise<number | undefined> {
    if (request.windows.length === 0) throw new Error("reserve needs at least one window");
    if (this.database.engine === "sqlite") return this.reserveStatement(request);
    const bigint = (value: number | string) => sql`cast(${value} as bigint)`;
    const bigints = (values: readonly number[]) => sql`cast(${values} as bigint[])`;
    const result = await sql<{ granted: string | number | null }>`
      select mxcd_reserve_upload(${bigint(quotaLockKey(request.userId))},
        ${request.reservationId}, ${request.userId}, ${request.owner},
        ${bigints(request.windows.map((w) => w.sinceTs))}, ${bigints(request.windows.map((w) => w.maxBytes))},
        ${bigint(request.atLeast)}, ${bigint(request.atMost)}, ${bigint(request.now)}, ${bigint(request.expiresTs)}
      ) as granted`.execute(this.database.db);
    const granted = result.rows[0]?.granted;
    return granted === null || granted === undefined ? undefined : Number(granted);
  }

  /**
   * The check-and-insert of `reserve` on SQLite, one statement, compiled once
   * per number of windows (building and compiling it took 25–65 µs of CPU a
   * call, a third of the check's CPU: bench/README.md "Eighth session").
   */
  private async reserveStatement(request: ReserveRequest): Promise<number | undefined> {
    const { windows } = request;
    let statement = this.#reserveStatements.get(windows.length);
    if (!statement) {
      statement = reserveStatementFor(this.database.db, windows.length);
      // Bounded: one per window count a config can give (the largest list of windows).
      this.#reserveStatements.set(windows.length, statement);
    }
    const [row] = await statement.execute(
      request.reservationId,
      request.userId,
      request.owner,
      request.now,
      request.atLeast,
      request.atMost,
      request.expiresTs,
      ...windowArgs(windows),
    );
    return row === undefined ? undefined : Number(row.bytes);
  }

  /**
   * Stored bytes of `userId` after each of `sinces` and their reservations
   * alive at `now` (but `exclude`), in one statement (the admin
   * `media_usage` API): per window the bucket totals of migration 0019 and
   * one minute of rows (`usedSince`), as the check reads them.
   */
  async usage(
    userId: string,
    sinces: readonly number[],
    now: number,
    db: Db = this.database.db,
    exclude?: string,
  ): Promise<QuotaUsage> {
    const excluded = exclude === undefined ? sql`` : sql`and reservation_id <> ${exclude}`;
    const reserved = sql`from media_upload_reservations
      where user_id = ${userId} and expires_ts > ${now} ${excluded}`;
    const sums = sinces.map(
      (since, i) => sql`${usedSince(userId, windowBounds(since))} as ${sql.ref(`w${i}`)}`,
    );
    const result = await sql<Record<string, string | number | null>>`
      select ${sql.join([
        ...sums,
        sql`(select sum(bytes) ${reserved}) as reserved`,
        sql`(select count(*) ${reserved}) as reservations`,
      ])}`.execute(db);
    const values = result.rows[0]!;
    return {
      used: sinces.map((_, i) => Number(values[`w${i}`] ?? 0)),
      reservedBytes: Number(values.reserved ?? 0),
      reservations: Number(values.reservations ?? 0),
    };
  }

  /** Pushes the expiry of every reservation `owner` holds (its uploads still stream). */
  async renew(owner: string, expiresTs: number): Promise<void> {
    await this.database.db
      .updateTable("media_upload_reservations")
      .set({ expires_ts: expiresTs })
      .where("owner", "=", owner)
      .execute();
  }

  /** Removes the reservations whose lease ended before `now` (they count no more); returns how many. */
  async dropExpired(now: number): Promise<number> {
    const result = await this.database.db
      .deleteFrom("media_upload_reservations")
      .where("expires_ts", "<=", now)
      .executeTakeFirst();
    return Number(result.numDeletedRows);
  }

  /** Drops a reservation: its upload failed, or (with the upload's `tx`) its row now counts. */
  async drop(reservationId: string, db: Db = this.database.db): Promise<void> {
    await this.#drop.executeIn(db, reservationId);
  }
}

/**
 * The arguments of SQLite's check-and-insert, in order; then, for each
 * window, its `maxBytes` and its `windowBounds`.
 */
type ReserveArgs = [
  reservationId: string,
  userId: string,
  owner: string,
  now: number,
  atLeast: number,
  atMost: number,
  expiresTs: number,
  ...windows: number[],
];
type ReserveStatement = CompiledSelect<ReserveArgs, { bytes: string | number }>;
/** The arguments before the windows'. */
const FIXED_ARGS = 7;
const ARGS_PER_WINDOW = 1 + BOUNDS_PER_WINDOW;

/** The windows' part of `ReserveArgs`. */
function windowArgs(windows: readonly QuotaWindow[]): number[] {
  return windows.flatMap((w) => [w.maxBytes, ...windowBounds(w.sinceTs)]);
}

/**
 * SQLite's check-and-insert for `count` windows: each window's sum
 * (`usedSince`: bucket totals and one minute of rows), the live
 * reservations (but this one), and the insert (or the grown total) only if
 * the smallest room is at least `atLeast`; returns the total granted.
 */
function reserveStatementFor(db: Db, count: number): ReserveStatement {
  const build = (...args: ReserveArgs) => {
    const [reservationId, userId, owner, now, atLeast, atMost, expiresTs] = args;
    const lefts = Array.from({ length: count }, (_, i) => {
      const at = FIXED_ARGS + i * ARGS_PER_WINDOW;
      const bounds = args.slice(at + 1, at + ARGS_PER_WINDOW);
      return sql`${args[at]} - ${usedSince(userId, bounds)}`;
    });
    // The smallest room of all windows: min() of several arguments (min()
    // of one argument is the aggregate).
    const least = lefts.length === 1 ? lefts[0]! : sql`min(${sql.join(lefts)})`;
    const statement = sql<{ bytes: string | number }>`
      with held as (
        select coalesce(sum(bytes), 0) as held_bytes from media_upload_reservations
        where user_id = ${userId} and expires_ts > ${now}
          and reservation_id <> ${reservationId}
      ), free as (
        select ${least} - held_bytes as room from held
      )
      insert into media_upload_reservations (reservation_id, user_id, bytes, owner, expires_ts)
      select ${reservationId}, ${userId}, min(${atMost}, room), ${owner}, ${expiresTs}
      from free where room >= ${atLeast}
      on conflict (reservation_id) do update set bytes = excluded.bytes, expires_ts = excluded.expires_ts
      returning bytes`;
    return { compile: () => statement.compile(db) };
  };
  return new CompiledSelect(() => db, build, FIXED_ARGS + ARGS_PER_WINDOW * count);
}

/** The advisory lock of a user's quota: the first 8 bytes of SHA-256("mxcd-quota:" + user), signed. */
export function quotaLockKey(userId: string): string {
  return createHash("sha256").update(`mxcd-quota:${userId}`).digest().readBigInt64BE(0).toString();
}
