/**
 * Events as the room services see them, and their client-server API
 * serialisation ("ClientEvent": event_id, type, sender, content, ...).
 */

export type JsonObject = Record<string, unknown>;

/** An event about to be stored; the writer assigns id, timestamp and stream ordering. */
export interface NewEvent {
  readonly roomId: string;
  readonly sender: string;
  readonly type: string;
  /** Undefined for message events; `""` is a valid state key. */
  readonly stateKey?: string;
  readonly content: JsonObject;
  /** For `m.room.redaction`: the event it censors. */
  readonly redacts?: string;
}

/** An event as stored. */
export interface StoredEvent {
  readonly streamOrdering: number;
  readonly eventId: string;
  readonly roomId: string;
  readonly type: string;
  readonly stateKey: string | null;
  readonly sender: string;
  readonly content: JsonObject;
  readonly originServerTs: number;
  readonly redacts: string | null;
  /** The redaction event that censored this one, if any. */
  readonly redactedBy: string | null;
}

/**
 * The client format of `event`. A censored event carries the redaction in
 * `unsigned.redacted_because` when the caller supplies it.
 */
export function toClientEvent(event: StoredEvent, now: number, redactedBecause?: StoredEvent) {
  const unsigned: JsonObject = { age: Math.max(0, now - event.originServerTs) };
  if (redactedBecause) unsigned.redacted_because = toClientEvent(redactedBecause, now);
  return {
    event_id: event.eventId,
    room_id: event.roomId,
    type: event.type,
    sender: event.sender,
    content: event.content,
    origin_server_ts: event.originServerTs,
    ...(event.stateKey !== null && { state_key: event.stateKey }),
    ...(event.redacts !== null && { redacts: event.redacts }),
    unsigned,
  };
}
