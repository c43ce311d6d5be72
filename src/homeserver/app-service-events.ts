/**
 * Reading the events of an application-service transaction (Matrix spec,
 * application-service API "Pushing events"; attached-mode.md §3.2). The
 * homeserver sends client-format events; mxcd reads only what the
 * media-reference index and media_redaction_policy need.
 *
 * A transaction is refused only when its shape is wrong (not an object,
 * `events` not an array, too many events). One malformed event inside a
 * well-formed transaction is skipped, not refused: a refusal makes the
 * homeserver retry the same transaction forever (Synapse marks the AS down and
 * replays it with backoff), so one odd event would stop the whole feed.
 */
import { MatrixError } from "../domain/matrix-error.js";

/** Most events accepted in one transaction; Synapse sends at most 100. */
export const MAX_TRANSACTION_EVENTS = 1000;
/** Longest event, room or user id kept (the spec's 255-byte identifier limit). */
const MAX_ID_LENGTH = 255;

/** One pushed event, as far as mxcd reads it. */
export interface PushedEvent {
  readonly eventId: string;
  readonly roomId: string;
  readonly sender: string;
  readonly type: string;
  /** Undefined for message events. */
  readonly stateKey: string | undefined;
  readonly content: unknown;
  /** For `m.room.redaction`: `content.redacts` (room v11+), else top-level `redacts`. */
  readonly redacts: string | undefined;
}

type Json = Record<string, unknown>;

function objectOf(value: unknown): Json | undefined {
  return typeof value === "object" && value !== null && !Array.isArray(value)
    ? (value as Json)
    : undefined;
}

/**
 * Control characters: never in an identifier, and a NUL in any text column
 * makes PostgreSQL refuse the whole database transaction (a 500 the
 * homeserver would retry forever).
 */
function hasControlCharacter(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code < 0x20 || code === 0x7f) return true;
  }
  return false;
}

/** A string of at most 255 characters without control characters, else undefined. */
function textOf(value: unknown): string | undefined {
  return typeof value === "string" && value.length <= MAX_ID_LENGTH && !hasControlCharacter(value)
    ? value
    : undefined;
}

/** An identifier: `textOf` with its sigil and something after it, else undefined. */
function idOf(value: unknown, sigil: string): string | undefined {
  const text = textOf(value);
  return text !== undefined && text.length > 1 && text.startsWith(sigil) ? text : undefined;
}

/** A room id as events carry it (`!`, at most 255 characters, no control character), else undefined. */
export function roomIdOf(value: unknown): string | undefined {
  return idOf(value, "!");
}

/**
 * The `events` array of a transaction body: 400 M_NOT_JSON when the body is
 * not an object, 400 M_BAD_JSON when `events` is not an array, 413
 * M_TOO_LARGE beyond `MAX_TRANSACTION_EVENTS`.
 */
export function transactionEvents(body: unknown): readonly unknown[] {
  const object = objectOf(body);
  if (!object) throw new MatrixError("M_NOT_JSON", "Content must be a JSON object.");
  const events = object.events;
  if (!Array.isArray(events)) throw new MatrixError("M_BAD_JSON", "'events' must be an array");
  if (events.length > MAX_TRANSACTION_EVENTS) {
    throw new MatrixError(
      "M_TOO_LARGE",
      `A transaction may carry at most ${MAX_TRANSACTION_EVENTS} events`,
      413,
    );
  }
  return events;
}

/**
 * One event of a transaction, or undefined when its id, room, sender, type
 * or state key is missing, not a string, over 255 characters or holds a
 * control character.
 */
export function parsePushedEvent(value: unknown): PushedEvent | undefined {
  const event = objectOf(value);
  if (!event) return undefined;
  const eventId = idOf(event.event_id, "$");
  const roomId = idOf(event.room_id, "!");
  const sender = idOf(event.sender, "@");
  const type = textOf(event.type);
  if (!eventId || !roomId || !sender || type === undefined) return undefined;
  const stateKey = textOf(event.state_key);
  if (event.state_key !== undefined && stateKey === undefined) return undefined;
  const redacts =
    type === "m.room.redaction"
      ? (idOf(objectOf(event.content)?.redacts, "$") ?? idOf(event.redacts, "$"))
      : undefined;
  return { eventId, roomId, sender, type, stateKey, content: event.content, redacts };
}

/**
 * The content fields that can carry `mxc://` URIs (those
 * `extractMediaReferences` reads), and nothing else: what is kept of an event
 * so media_redaction_policy can judge its later redaction, bounded whatever
 * the event's size. Extracting from the result finds the same references as
 * extracting from the whole content.
 */
export function mediaContentOf(content: unknown): Json {
  const body = objectOf(content) ?? {};
  const kept: Json = {};
  const url = (value: unknown) => (typeof value === "string" ? value : undefined);
  if (url(body.url)) kept.url = body.url;
  if (url(body.avatar_url)) kept.avatar_url = body.avatar_url;
  const fileUrl = url(objectOf(body.file)?.url);
  if (fileUrl) kept.file = { url: fileUrl };
  const info = objectOf(body.info);
  const thumbnailUrl = url(info?.thumbnail_url);
  const thumbnailFileUrl = url(objectOf(info?.thumbnail_file)?.url);
  if (thumbnailUrl || thumbnailFileUrl) {
    kept.info = {
      ...(thumbnailUrl ? { thumbnail_url: thumbnailUrl } : {}),
      ...(thumbnailFileUrl ? { thumbnail_file: { url: thumbnailFileUrl } } : {}),
    };
  }
  return kept;
}
