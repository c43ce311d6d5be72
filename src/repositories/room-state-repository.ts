/**
 * The current state of rooms: which event holds each (type, state key), with
 * the membership of member events kept beside it so membership checks and a
 * user's room list never parse event JSON.
 */
import type { Database, Db } from "../db/database.js";
import type { JsonObject } from "../domain/room-event.js";

/** The current holder of one (room, type, state key). */
export interface StateEntry {
  readonly eventId: string;
  readonly membership: string | null;
}

/** One (room, type, state key) → event assignment. */
export interface StateRow {
  readonly roomId: string;
  readonly type: string;
  readonly stateKey: string;
  readonly eventId: string;
  readonly membership: string | null;
}

/** The `current_state` table. */
export class RoomStateRepository {
  constructor(private readonly database: Database) {}

  /** The current entry for (room, type, state key), if any. */
  async get(
    roomId: string,
    type: string,
    stateKey: string,
    db: Db = this.database.db,
  ): Promise<StateEntry | undefined> {
    const row = await db
      .selectFrom("current_state")
      .select(["event_id", "membership"])
      .where("room_id", "=", roomId)
      .where("type", "=", type)
      .where("state_key", "=", stateKey)
      .executeTakeFirst();
    return row && { eventId: row.event_id, membership: row.membership };
  }

  /** The content of the current state event for (room, type, state key), if any. */
  async content(roomId: string, type: string, stateKey: string): Promise<JsonObject | undefined> {
    const row = await this.database.db
      .selectFrom("current_state")
      .innerJoin("events", "events.event_id", "current_state.event_id")
      .select("events.content")
      .where("current_state.room_id", "=", roomId)
      .where("current_state.type", "=", type)
      .where("current_state.state_key", "=", stateKey)
      .executeTakeFirst();
    return row && (JSON.parse(row.content) as JsonObject);
  }

  /** A user's current membership in a room (`join`, `invite`, `leave`, `ban`), if any. */
  async membership(roomId: string, userId: string): Promise<string | undefined> {
    const entry = await this.get(roomId, "m.room.member", userId);
    return entry?.membership ?? undefined;
  }

  /** Points (room, type, state key) at a new event. */
  async put(db: Db, row: StateRow): Promise<void> {
    await db
      .insertInto("current_state")
      .values({
        room_id: row.roomId,
        type: row.type,
        state_key: row.stateKey,
        event_id: row.eventId,
        membership: row.membership,
      })
      .onConflict((oc) =>
        oc
          .columns(["room_id", "type", "state_key"])
          .doUpdateSet({ event_id: row.eventId, membership: row.membership }),
      )
      .execute();
  }

  /** The rooms a user is joined to (index `current_state_member`). */
  async joinedRooms(userId: string): Promise<string[]> {
    const rows = await this.database.db
      .selectFrom("current_state")
      .select("room_id")
      .where("state_key", "=", userId)
      .where("type", "=", "m.room.member")
      .where("membership", "=", "join")
      .orderBy("room_id")
      .execute();
    return rows.map((r) => r.room_id);
  }
}
