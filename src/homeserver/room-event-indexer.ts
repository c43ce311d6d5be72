/**
 * The one path by which a homeserver's room event reaches the
 * media-reference index, whether the homeserver pushed it (an
 * application-service transaction, app-service-receiver.ts) or the
 * room-history backfill read it from the admin `messages` API
 * (src/jobs/room-history-backfill-job.ts).
 *
 * Inside the caller's transaction, for one parsed event:
 * 1. a redaction (`content.redacts`, else top-level `redacts`) marks its
 *    recorded target redacted and drops the target's references;
 * 2. an event whose content names `mxc://` URIs is recorded once by event id
 *    (a second delivery, from either path, is a no-op) and its references
 *    are inserted.
 * What a redaction then does to the media (media_redaction_policy) is the
 * caller's choice: the receiver applies it after commit, the backfill does
 * not (docs/attached.md).
 */
import type { Db } from "../db/database.js";
import { extractMediaReferences } from "../domain/media-reference-extractor.js";
import type {
  AppServiceEventRepository,
  AppServiceEventRow,
} from "../repositories/app-service-event-repository.js";
import type { MediaReferenceRepository } from "../repositories/media-reference-repository.js";
import { mediaContentOf, type PushedEvent } from "./app-service-events.js";

/** What indexing one event did. */
export interface IndexedEvent {
  /** True when the event's references were recorded now (not before). */
  readonly recorded: boolean;
  /** The recorded event this redaction redacted now, if any. */
  readonly redacted: AppServiceEventRow | undefined;
}

/** Indexes room events; see the module note. */
export class RoomEventIndexer {
  constructor(
    private readonly events: AppServiceEventRepository,
    private readonly references: Pick<MediaReferenceRepository, "insertForEvent">,
  ) {}

  /** Applies one event to the index inside `tx`. */
  async index(tx: Db, event: PushedEvent): Promise<IndexedEvent> {
    const redacted =
      event.redacts === undefined
        ? undefined
        : await this.events.redact(tx, event.roomId, event.redacts);
    return { recorded: await this.#record(tx, event), redacted };
  }

  /** Records an event's references; false when it has none or was recorded before. */
  async #record(tx: Db, event: PushedEvent): Promise<boolean> {
    const refs = extractMediaReferences(event.type, event.stateKey, event.content);
    if (refs.length === 0) return false;
    const position = await this.events.recordEvent(tx, {
      ...event,
      mediaContent: mediaContentOf(event.content),
    });
    if (position === undefined) return false;
    const where = { roomId: event.roomId, eventId: event.eventId, streamOrdering: position };
    await this.references.insertForEvent(tx, where, refs);
    return true;
  }
}
