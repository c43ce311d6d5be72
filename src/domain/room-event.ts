/**
 * Events as the room services see them, the limits every stored content
 * obeys, and their client-server API serialisation ("ClientEvent":
 * event_id, type, sender, content, ...).
 */
import { assertJsonDepth } from "./json-depth.js";
import { MatrixError } from "./matrix-error.js";

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

/** Largest event content accepted, in bytes of JSON (the spec's 65,536-byte event limit). */
export const MAX_CONTENT_BYTES = 65_536;

/**
 * 400 `M_BAD_JSON` for content nested deeper than `MAX_JSON_DEPTH`, then 413
 * `M_TOO_LARGE` for content over `MAX_CONTENT_BYTES`. The depth is checked
 * first because measuring the size serialises the content, which recurses.
 */
export function checkEventContent(content: JsonObject): void {
  assertJsonDepth(content, "Event content");
  if (Buffer.byteLength(JSON.stringify(content)) > MAX_CONTENT_BYTES) {
    throw new MatrixError("M_TOO_LARGE", "event too large");
  }
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
