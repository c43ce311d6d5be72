/**
 * The application-service tables (migration 0006-app-service.ts): pushed
 * transaction ids and the pushed events that referenced media. Every write
 * runs inside the caller's transaction, so a transaction id, its events'
 * rows and their `media_references` commit together or not at all.
 *
 * Idempotency is the database's: the transaction id and the event id are
 * unique keys written with `ON CONFLICT DO NOTHING`, so two mxcd processes
 * receiving the same transaction (or the same event in two transactions)
 * record it once; PostgreSQL makes the second writer wait for the first.
 */
import type { Db } from "../db/database.js";

/** A recorded event, as media_redaction_policy needs it once the event is redacted. */
export interface AppServiceEventRow {
  readonly position: number;
  readonly eventId: string;
  readonly roomId: string;
  readonly sender: string;
  readonly type: string;
  readonly stateKey: string | null;
  /** Only the content fields that carry `mxc://` URIs. */
  readonly mediaContent: Record<string, unknown>;
}

/** The event to record (see `AppServiceEventRepository.recordEvent`). */
export interface NewAppServiceEvent {
  readonly eventId: string;
  readonly roomId: string;
  readonly sender: string;
  readonly type: string;
  readonly stateKey: string | undefined;
  readonly mediaContent: Record<string, unknown>;
}

/** `app_service_transactions` and `app_service_events`. */
export class AppServiceEventRepository {
  /** Records a transaction id; false when it was already recorded (a replay). */
  async recordTransaction(db: Db, asId: string, txnId: string, now: number): Promise<boolean> {
    const inserted = await db
      .insertInto("app_service_transactions")
      .values({ as_id: asId, txn_id: txnId, received_ts: now })
      .onConflict((oc) => oc.columns(["as_id", "txn_id"]).doNothing())
      .returning("txn_id")
      .executeTakeFirst();
    return inserted !== undefined;
  }

  /** Records an event and returns its new position; undefined when the event id is known. */
  async recordEvent(db: Db, event: NewAppServiceEvent): Promise<number | undefined> {
    const inserted = await db
      .insertInto("app_service_events")
      .values({
        event_id: event.eventId,
        room_id: event.roomId,
        sender: event.sender,
        type: event.type,
        state_key: event.stateKey ?? null,
        media_content: JSON.stringify(event.mediaContent),
        redacted: false,
      })
      .onConflict((oc) => oc.column("event_id").doNothing())
      .returning("position")
      .executeTakeFirst();
    return inserted === undefined ? undefined : Number(inserted.position);
  }

  /**
   * Marks a recorded, unredacted event of `roomId` redacted, drops its rows
   * from `media_references` and returns it; undefined when there is no such
   * event (no media, another room, or already redacted: a redaction seen
   * twice acts once).
   */
  async redact(db: Db, roomId: string, eventId: string): Promise<AppServiceEventRow | undefined> {
    const row = await db
      .updateTable("app_service_events")
      .set({ redacted: true })
      .where("event_id", "=", eventId)
      .where("room_id", "=", roomId)
      .where("redacted", "=", false)
      .returning(["position", "event_id", "room_id", "sender", "type", "state_key"])
      .returning("media_content")
      .executeTakeFirst();
    if (!row) return undefined;
    const position = Number(row.position);
    // By (room_id, stream_ordering): the media_references_room index; the
    // event id keeps a standalone event of the same position untouched.
    await db
      .deleteFrom("media_references")
      .where("room_id", "=", roomId)
      .where("stream_ordering", "=", position)
      .where("event_id", "=", eventId)
      .execute();
    return {
      position,
      eventId: row.event_id,
      roomId: row.room_id,
      sender: row.sender,
      type: row.type,
      stateKey: row.state_key,
      mediaContent: JSON.parse(row.media_content) as Record<string, unknown>,
    };
  }
}
