/**
 * Stored room events and the send-transaction ids that make retries
 * idempotent. Every method takes the executor (`Db` or a transaction) so the
 * event writer can store an event, its state and its references atomically.
 */
import type { Database, Db } from "../db/database.js";
import type { JsonObject, StoredEvent } from "../domain/room-event.js";

/** What identifies one send or redact request for idempotency. */
export interface TransactionKey {
  readonly tokenHash: string;
  /** The endpoint and its path parameters, e.g. `send <room> <type>`. */
  readonly scope: string;
  readonly txnId: string;
}

/** An event row ready to insert (the stream ordering is allocated by the database). */
export type EventRow = Omit<StoredEvent, "streamOrdering" | "redactedBy">;

/** Which way `/messages` pages: `b` from newer to older, `f` from older to newer. */
export interface EventPage {
  readonly roomId: string;
  readonly direction: "b" | "f";
  /** Going back: events at or below this ordering; forward: events above it. */
  readonly position: number;
  readonly limit: number;
}

const COLUMNS = [
  "stream_ordering",
  "event_id",
  "room_id",
  "type",
  "state_key",
  "sender",
  "content",
  "origin_server_ts",
  "redacts",
  "redacted_by",
] as const;

/** The `events` and `event_transactions` tables. */
export class EventRepository {
  constructor(private readonly database: Database) {}

  /** Inserts an event and returns its stream ordering. */
  async insert(db: Db, event: EventRow): Promise<number> {
    const row = await db
      .insertInto("events")
      .values({
        event_id: event.eventId,
        room_id: event.roomId,
        type: event.type,
        state_key: event.stateKey,
        sender: event.sender,
        content: JSON.stringify(event.content),
        origin_server_ts: event.originServerTs,
        redacts: event.redacts,
        redacted: false,
      })
      .returning("stream_ordering")
      .executeTakeFirstOrThrow();
    return Number(row.stream_ordering);
  }

  /** One event by id, from any room. */
  async get(eventId: string, db: Db = this.database.db): Promise<StoredEvent | undefined> {
    const row = await db
      .selectFrom("events")
      .select(COLUMNS)
      .where("event_id", "=", eventId)
      .executeTakeFirst();
    return row && toEvent(row);
  }

  /** The events with these ids that exist, in no particular order. */
  async getMany(eventIds: readonly string[]): Promise<StoredEvent[]> {
    if (eventIds.length === 0) return [];
    const rows = await this.database.db
      .selectFrom("events")
      .select(COLUMNS)
      .where("event_id", "in", eventIds)
      .execute();
    return rows.map(toEvent);
  }

  /** One `/messages` page: a keyset range scan of (room_id, stream_ordering). */
  async page(query: EventPage): Promise<StoredEvent[]> {
    const backwards = query.direction === "b";
    const rows = await this.database.db
      .selectFrom("events")
      .select(COLUMNS)
      .where("room_id", "=", query.roomId)
      .where("stream_ordering", backwards ? "<=" : ">", query.position)
      .orderBy("stream_ordering", backwards ? "desc" : "asc")
      .limit(query.limit)
      .execute();
    return rows.map(toEvent);
  }

  /** The highest stream ordering allocated so far (0 when there are no events). */
  async currentPosition(): Promise<number> {
    const row = await this.database.db
      .selectFrom("events")
      .select((eb) => eb.fn.max("stream_ordering").as("max"))
      .executeTakeFirst();
    return Number(row?.max ?? 0);
  }

  /** Replaces an uncensored event's content by its censored form; false if already censored. */
  async censor(db: Db, eventId: string, content: JsonObject, redactedBy: string) {
    const result = await db
      .updateTable("events")
      .set({ content: JSON.stringify(content), redacted: true, redacted_by: redactedBy })
      .where("event_id", "=", eventId)
      .where("redacted", "=", false)
      .executeTakeFirst();
    return Number(result.numUpdatedRows) > 0;
  }

  /** The event a transaction id already produced, if any. */
  async findTransaction(key: TransactionKey, db: Db = this.database.db) {
    const row = await db
      .selectFrom("event_transactions")
      .select("event_id")
      .where("token_hash", "=", key.tokenHash)
      .where("scope", "=", key.scope)
      .where("txn_id", "=", key.txnId)
      .executeTakeFirst();
    return row?.event_id;
  }

  /**
   * Records that `key` produced `eventId`; false when the key was already
   * taken. On PostgreSQL a concurrent claim waits for the first to commit.
   */
  async claimTransaction(db: Db, key: TransactionKey, eventId: string, now: number) {
    const result = await db
      .insertInto("event_transactions")
      .values({
        token_hash: key.tokenHash,
        scope: key.scope,
        txn_id: key.txnId,
        event_id: eventId,
        created_ts: now,
      })
      .onConflict((oc) => oc.columns(["token_hash", "scope", "txn_id"]).doNothing())
      .executeTakeFirst();
    return Number(result.numInsertedOrUpdatedRows ?? 0) > 0;
  }
}

function toEvent(row: {
  stream_ordering: number;
  event_id: string;
  room_id: string;
  type: string;
  state_key: string | null;
  sender: string;
  content: string;
  origin_server_ts: number;
  redacts: string | null;
  redacted_by: string | null;
}): StoredEvent {
  return {
    streamOrdering: Number(row.stream_ordering),
    eventId: row.event_id,
    roomId: row.room_id,
    type: row.type,
    stateKey: row.state_key,
    sender: row.sender,
    content: JSON.parse(row.content) as JsonObject,
    originServerTs: Number(row.origin_server_ts),
    redacts: row.redacts,
    redactedBy: row.redacted_by,
  };
}
