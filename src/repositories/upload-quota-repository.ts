/**
 * Upload quotas (docs/media.md "Upload limits"): a user's stored bytes per
 * window and their live reservations (`media_upload_reservations`).
 *
 * Design note. The check and the reservation are one atomic step per user:
 * on PostgreSQL a transaction-scoped advisory lock keyed by the user id
 * serialises the steps of every process (and dies with the transaction,
 * never leaked); on SQLite the one connection runs one transaction at a
 * time. Usage is read in ONE statement, so it sees one snapshot: an upload
 * committing its row (and deleting its reservation in the same
 * transaction) is counted once, before or after, never zero times.
 *
 * What counts (as Synapse): every local row of the user whose bytes are
 * stored (`media_length > 0`) and whose `created_ts` is inside the window,
 * quarantined media included; deleted media frees its bytes. Not counted:
 * URL-preview images (`url_cache` set — the server fetched them, the user
 * did not upload them; media-gaps §7) and ids still waiting for or
 * streaming their bytes (their reservation counts instead).
 */
import { createHash } from "node:crypto";
import { sql } from "kysely";
import type { Database, Db } from "../db/database.js";

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
  constructor(private readonly database: Database) {}

  /**
   * Sets the reservation's total to as much of `atMost` as every window
   * allows, if that is at least `atLeast`; returns the total granted, or
   * undefined (nothing changed) when it is not. Expired reservations of
   * the user (a crashed process's) are removed on the way.
   */
  async reserve(request: ReserveRequest): Promise<number | undefined> {
    return this.database.transaction(async (tx) => {
      if (this.database.engine === "postgres") {
        await sql`select pg_advisory_xact_lock(cast(${quotaLockKey(request.userId)} as bigint))`.execute(
          tx,
        );
      }
      await tx
        .deleteFrom("media_upload_reservations")
        .where("user_id", "=", request.userId)
        .where("expires_ts", "<=", request.now)
        .execute();
      const usage = await this.usage(
        request.userId,
        request.windows.map((w) => w.sinceTs),
        request.now,
        tx,
        request.reservationId,
      );
      let room = Number.POSITIVE_INFINITY;
      request.windows.forEach((window, i) => {
        room = Math.min(room, window.maxBytes - usage.used[i]! - usage.reservedBytes);
      });
      if (room < request.atLeast) return undefined;
      const bytes = Math.min(request.atMost, room);
      await tx
        .insertInto("media_upload_reservations")
        .values({
          reservation_id: request.reservationId,
          user_id: request.userId,
          bytes,
          owner: request.owner,
          expires_ts: request.expiresTs,
        })
        .onConflict((oc) =>
          oc.column("reservation_id").doUpdateSet({ bytes, expires_ts: request.expiresTs }),
        )
        .execute();
      return bytes;
    });
  }

  /**
   * Stored bytes of `userId` after each of `sinces` and their reservations
   * alive at `now` (but `exclude`), in one statement: one index-only range
   * scan of `local_media_upload_quota` (migration 0013) from the oldest `since`.
   */
  async usage(
    userId: string,
    sinces: readonly number[],
    now: number,
    db: Db = this.database.db,
    exclude?: string,
  ): Promise<QuotaUsage> {
    const oldest = Math.min(...sinces);
    let reserved = db
      .selectFrom("media_upload_reservations")
      .where("user_id", "=", userId)
      .where("expires_ts", ">", now);
    if (exclude !== undefined) reserved = reserved.where("reservation_id", "!=", exclude);
    const row = await db
      .selectFrom("local_media_repository")
      .select((eb) => [
        ...sinces.map((since, i) =>
          eb.fn
            .sum<string | number | null>(
              eb.case().when("created_ts", ">", since).then(eb.ref("media_length")).else(0).end(),
            )
            .as(`w${i}`),
        ),
        reserved.select((r) => r.fn.sum<string | number | null>("bytes").as("b")).as("reserved"),
        reserved.select((r) => r.fn.countAll<string | number>().as("n")).as("reservations"),
      ])
      .where("user_id", "=", userId)
      .where("created_ts", ">", sinces.length > 0 ? oldest : now)
      .where("url_cache", "is", null)
      .where("media_length", ">", 0)
      .executeTakeFirstOrThrow();
    const values = row as unknown as Record<string, string | number | null>;
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

  /** Drops a reservation: its upload failed, or (with the upload's `tx`) its row now counts. */
  async drop(reservationId: string, db: Db = this.database.db): Promise<void> {
    await db
      .deleteFrom("media_upload_reservations")
      .where("reservation_id", "=", reservationId)
      .execute();
  }
}

/** The advisory lock of a user's quota: the first 8 bytes of SHA-256("mxcd-quota:" + user), signed. */
function quotaLockKey(userId: string): string {
  return createHash("sha256").update(`mxcd-quota:${userId}`).digest().readBigInt64BE(0).toString();
}
