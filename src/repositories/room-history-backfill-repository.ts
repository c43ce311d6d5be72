/**
 * `room_history_backfill` (migration 0007-room-history-backfill.ts): the
 * room-history backfill's per-room watermark. Writes take the batch's
 * transaction, so a room's new watermark commits with the events it covers.
 */
import type { Database, Db } from "../db/database.js";

/** `pending`: more to read; `complete`: the history's end was reached; `failed`: gave up. */
export type RoomBackfillStatus = "pending" | "complete" | "failed";

/** One room's backfill state. */
export interface RoomBackfillState {
  readonly roomId: string;
  readonly status: RoomBackfillStatus;
  /** Where the next page starts; null at the start of the room's history. */
  readonly token: string | null;
  readonly pages: number;
  readonly events: number;
  readonly skipped: number;
  readonly lastError: string | null;
}

/** What one recorded page adds to its room. */
export interface RecordedPage {
  /** The page's `end` token (unchanged when the page ended the history). */
  readonly token: string | null;
  readonly events: number;
  readonly skipped: number;
  /** The page reached the end of the room's history. */
  readonly complete: boolean;
}

export class RoomHistoryBackfillRepository {
  constructor(private readonly database: Database) {}

  /** Adds rooms as pending; rooms already known are left as they are. */
  async addRooms(db: Db, roomIds: readonly string[], now: number): Promise<void> {
    if (roomIds.length === 0) return;
    await db
      .insertInto("room_history_backfill")
      .values(roomIds.map((roomId) => ({ room_id: roomId, status: "pending", updated_ts: now })))
      .onConflict((oc) => oc.column("room_id").doNothing())
      .execute();
  }

  /**
   * Marks a room complete because its `m.room.create` was pushed: the
   * application service has seen it from its first event, so there is no
   * history to read. A room the backfill already listed becomes complete too.
   */
  async completeFromCreation(db: Db, roomId: string, now: number): Promise<void> {
    await db
      .insertInto("room_history_backfill")
      .values({ room_id: roomId, status: "complete", completed_ts: now, updated_ts: now })
      .onConflict((oc) =>
        oc.column("room_id").doUpdateSet({
          status: "complete",
          last_error: null,
          completed_ts: now,
          updated_ts: now,
        }),
      )
      .execute();
  }

  /** The pending room first by room id (one probe of the status index); undefined when none. */
  async nextPending(db: Db = this.database.db): Promise<RoomBackfillState | undefined> {
    const row = await db
      .selectFrom("room_history_backfill")
      .selectAll()
      .where("status", "=", "pending")
      .orderBy("room_id")
      .limit(1)
      .executeTakeFirst();
    return row && toState(row);
  }

  /** One room's state; undefined for a room the backfill has not listed. */
  async get(roomId: string, db: Db = this.database.db): Promise<RoomBackfillState | undefined> {
    const row = await db
      .selectFrom("room_history_backfill")
      .selectAll()
      .where("room_id", "=", roomId)
      .executeTakeFirst();
    return row && toState(row);
  }

  /** Records a page of a room: its new watermark and counts, and completion. */
  async recordPage(db: Db, roomId: string, page: RecordedPage, now: number): Promise<void> {
    await db
      .updateTable("room_history_backfill")
      .set((eb) => ({
        token: page.token,
        pages: eb("pages", "+", 1),
        events: eb("events", "+", page.events),
        skipped: eb("skipped", "+", page.skipped),
        status: page.complete ? "complete" : "pending",
        completed_ts: page.complete ? now : null,
        updated_ts: now,
      }))
      .where("room_id", "=", roomId)
      .execute();
  }

  /** Gives up on a room, keeping its watermark, with the reason. */
  async fail(db: Db, roomId: string, error: string, skipped: number, now: number): Promise<void> {
    await db
      .updateTable("room_history_backfill")
      .set((eb) => ({
        status: "failed",
        last_error: error,
        skipped: eb("skipped", "+", skipped),
        updated_ts: now,
      }))
      .where("room_id", "=", roomId)
      .execute();
  }
}

function toState(row: {
  room_id: string;
  status: string;
  token: string | null;
  pages: number | string | bigint;
  events: number | string | bigint;
  skipped: number | string | bigint;
  last_error: string | null;
}): RoomBackfillState {
  return {
    roomId: row.room_id,
    status: row.status as RoomBackfillStatus,
    token: row.token,
    pages: Number(row.pages),
    events: Number(row.events),
    skipped: Number(row.skipped),
    lastError: row.last_error,
  };
}
