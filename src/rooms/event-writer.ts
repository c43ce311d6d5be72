/**
 * Stores events. One `write` is one database transaction that, for each
 * event: inserts it (allocating its stream ordering), moves current state
 * and the room's statistics, records the media it references, and, for a
 * redaction, censors the target (redaction-algorithm.ts) and drops the
 * target's references. It also reports each censored target as it was
 * before censoring, for the media redaction policy (media-redaction-policy.ts)
 * to judge once the transaction has committed.
 *
 * A transaction key makes the write idempotent: the key is claimed first, so
 * a retry (or a concurrent duplicate, which waits on PostgreSQL's unique index)
 * gets the first write's event id and stores nothing.
 */
import type { Database, Db } from "../db/database.js";
import { extractMediaReferences } from "../domain/media-reference-extractor.js";
import type { NewRoom } from "../domain/room.js";
import { checkEventContent, type NewEvent, type StoredEvent } from "../domain/room-event.js";
import { statsForState } from "../domain/room-stats.js";
import { newEventId } from "../identifiers/room-id.js";
import type { EventRepository, TransactionKey } from "../repositories/event-repository.js";
import type { MediaReferenceRepository } from "../repositories/media-reference-repository.js";
import type { RoomRepository } from "../repositories/room-repository.js";
import type { RoomStateRepository } from "../repositories/room-state-repository.js";
import { redactContent } from "./redaction-algorithm.js";

/** The repositories the writer stores through, all used inside one transaction. */
export interface EventWriterDeps {
  readonly serverName: string;
  readonly database: Database;
  readonly rooms: RoomRepository;
  readonly events: EventRepository;
  readonly state: RoomStateRepository;
  readonly references: MediaReferenceRepository;
  readonly now: () => number;
}

/** Extras for one write: a room to create first, a transaction key for idempotency. */
export interface WriteOptions {
  /** Creates this room in the same transaction, before its first event. */
  readonly newRoom?: NewRoom;
  /** Makes the write idempotent under this key. */
  readonly transaction?: TransactionKey;
}

/** What a write stored, and what the redaction policy should look at. */
export interface WriteResult {
  /** The ids of the stored events, in order; for a replayed key, the first write's last id. */
  readonly eventIds: string[];
  /** The events this write censored, as they were before (none for a replayed key). */
  readonly redacted: StoredEvent[];
}

/** The one place events are stored (see the module comment). */
export class EventWriter {
  constructor(private readonly deps: EventWriterDeps) {}

  /**
   * Stores `events` in order, atomically. Every content is checked against
   * the event limits first (`checkEventContent`: 400 too deep, 413 too
   * large), whoever the caller, so nothing stored can overflow a later walk.
   */
  async write(events: readonly NewEvent[], options: WriteOptions = {}): Promise<WriteResult> {
    for (const event of events) checkEventContent(event.content);
    const { database, events: eventRepo, rooms } = this.deps;
    return database.transaction(async (tx) => {
      const eventIds = events.map(() => newEventId());
      const key = options.transaction;
      if (key && !(await eventRepo.claimTransaction(tx, key, eventIds.at(-1)!, this.deps.now()))) {
        const first = await eventRepo.findTransaction(key, tx);
        return { eventIds: first ? [first] : [], redacted: [] };
      }
      if (options.newRoom) await rooms.insert(tx, options.newRoom);
      const redacted: StoredEvent[] = [];
      for (const [index, event] of events.entries()) {
        await this.writeOne(tx, event, eventIds[index]!, redacted);
      }
      return { eventIds, redacted };
    });
  }

  private async writeOne(tx: Db, event: NewEvent, eventId: string, redacted: StoredEvent[]) {
    const { events, references } = this.deps;
    const streamOrdering = await events.insert(tx, {
      eventId,
      roomId: event.roomId,
      type: event.type,
      stateKey: event.stateKey ?? null,
      sender: event.sender,
      content: event.content,
      originServerTs: this.deps.now(),
      redacts: event.redacts ?? null,
    });
    if (event.stateKey !== undefined) await this.applyState(tx, event, event.stateKey, eventId);
    const refs = extractMediaReferences(event.type, event.stateKey, event.content);
    await references.insertForEvent(tx, { roomId: event.roomId, eventId, streamOrdering }, refs);
    if (event.type === "m.room.redaction" && event.redacts !== undefined) {
      await this.censor(tx, event.roomId, event.redacts, eventId, redacted);
    }
  }

  /** Moves current state to the new event and updates the room's statistics. */
  private async applyState(tx: Db, event: NewEvent, stateKey: string, eventId: string) {
    const { roomId, type, content } = event;
    const previous = await this.deps.state.get(roomId, type, stateKey, tx);
    const isMember = type === "m.room.member";
    const membership =
      isMember && typeof content.membership === "string" ? content.membership : null;
    await this.deps.state.put(tx, { roomId, type, stateKey, eventId, membership });
    const joinedDelta = isMember
      ? Number(membership === "join") - Number(previous?.membership === "join")
      : 0;
    const isLocal = stateKey.endsWith(`:${this.deps.serverName}`);
    const stats = (stateKey === "" && statsForState(type, content)) || {};
    await this.deps.rooms.update(tx, roomId, stats, {
      stateEvents: previous ? 0 : 1,
      joinedMembers: joinedDelta,
      joinedLocalMembers: isLocal ? joinedDelta : 0,
    });
  }

  /** Censors the redaction's target (same room only), drops its references, and collects it. */
  private async censor(
    tx: Db,
    roomId: string,
    targetId: string,
    redactionId: string,
    redacted: StoredEvent[],
  ) {
    const { events, references, state, rooms } = this.deps;
    const target = await events.get(targetId, tx);
    if (!target || target.roomId !== roomId) return;
    const censored = redactContent(target.type, target.content);
    if (!(await events.censor(tx, targetId, censored, redactionId))) return;
    await references.removeForEvent(tx, roomId, target.streamOrdering);
    redacted.push(target);
    if (target.stateKey !== "") return;
    const current = await state.get(roomId, target.type, "", tx);
    const stats = statsForState(target.type, censored);
    if (current?.eventId === targetId && stats) await rooms.update(tx, roomId, stats, {});
  }
}
