/**
 * Reads the homeserver's rooms and their history through Synapse's admin API
 * (attached-mode.md §3.2 "Backfilling rooms that existed before the AS",
 * option 2; tuwunel serves the same routes), with
 * `homeserver.admin_access_token`:
 *
 * - `GET /_synapse/admin/v1/rooms?from=<offset>&limit=` lists every room
 *   (`rooms[].room_id`, `total_rooms`, `next_batch` while more remain);
 * - `GET /_synapse/admin/v1/rooms/<id>/messages?dir=f&limit=[&from=<token>]`
 *   pages forward from the room's start (no `from`) through every event,
 *   whatever the admin's membership. `end` comes with a non-empty chunk;
 *   an empty chunk is the end of the history for now.
 *
 * Hostile answers are expected and sorted here (docs/attached.md):
 * - a 401 or 403 means the token is not an admin's: AdminTokenRefusedError,
 *   which names `homeserver.admin_access_token`;
 * - transport errors, 5xx and non-JSON error pages stay
 *   HomeserverUnavailableError (the homeserver is down: retry later);
 * - anything else unusable about ONE room (404, a non-JSON 2xx body, a
 *   wrong shape, more events than asked for, a page over the size cap, a bad
 *   `end`) is an `unusable` page: the caller gives that room up with the
 *   reason, and goes on with the others;
 * - malformed events (bad ids, fields, another room's id) are skipped and
 *   counted, as in application-service transactions.
 * Every answer is read with a byte cap, so one page costs bounded memory.
 */
import { type PushedEvent, parsePushedEvent, roomIdOf } from "./app-service-events.js";
import { type HomeserverClient, HomeserverUnavailableError } from "./homeserver-client.js";

/** Largest room-list answer read (100 rooms of a few hundred bytes each). */
const ROOM_LIST_MAX_BYTES = 4 * 1024 * 1024;
/**
 * Largest messages page read. An event is at most 64 KiB (spec "Size
 * limits"), so a page of 50 events is at most ~3.3 MB plus `unsigned`.
 */
const MESSAGES_MAX_BYTES = 8 * 1024 * 1024;
/** Longest pagination token accepted (Synapse's are well under 100 characters). */
const MAX_TOKEN_LENGTH = 4096;

/** The admin token was refused: not a homeserver admin's, or unknown. */
class AdminTokenRefusedError extends Error {
  constructor(status: number, errcode: string) {
    super(
      `the homeserver refused homeserver.admin_access_token (${status} ${errcode}): ` +
        "set it to the access token of a homeserver admin",
    );
    this.name = "AdminTokenRefusedError";
  }
}

/** One page of the room list. */
export interface RoomListPage {
  readonly roomIds: readonly string[];
  /** Entries without a valid room id. */
  readonly skipped: number;
  /** The offset of the next page; undefined on the last page. */
  readonly next: number | undefined;
  /** The homeserver's count of rooms, when it gave one. */
  readonly totalRooms: number | undefined;
}

/** One page of a room's history, or why the room's answers cannot be used. */
export type MessagesPage =
  | {
      readonly kind: "page";
      readonly events: readonly PushedEvent[];
      readonly skipped: number;
      /** The page's `end` token; undefined when the chunk was empty or the homeserver gave none. */
      readonly end: string | undefined;
      /** Events in the chunk, valid or not (0 means the end of the history). */
      readonly size: number;
    }
  | { readonly kind: "unusable"; readonly reason: string };

type Json = Record<string, unknown>;

const objectOf = (value: unknown): Json | undefined =>
  typeof value === "object" && value !== null && !Array.isArray(value)
    ? (value as Json)
    : undefined;

/** The admin-API reader described above. */
export class HomeserverRoomHistory {
  constructor(
    private readonly homeserver: HomeserverClient,
    private readonly adminToken: string,
  ) {}

  /** The room list from offset `from`; throws when the whole list is unusable. */
  async listRooms(from: number, limit: number, signal: AbortSignal): Promise<RoomListPage> {
    const answer = await this.#get(
      `/_synapse/admin/v1/rooms?from=${from}&limit=${limit}`,
      ROOM_LIST_MAX_BYTES,
      signal,
    );
    const body = objectOf(answer.json);
    if (answer.status !== 200 || !body || !Array.isArray(body.rooms)) {
      throw new Error(`the homeserver's room list is unusable (${describe(answer)})`);
    }
    if (body.rooms.length > limit) {
      throw new Error(`the homeserver listed ${body.rooms.length} rooms for limit=${limit}`);
    }
    const roomIds: string[] = [];
    for (const room of body.rooms) {
      const roomId = roomIdOf(objectOf(room)?.room_id);
      if (roomId !== undefined) roomIds.push(roomId);
    }
    return {
      roomIds,
      skipped: body.rooms.length - roomIds.length,
      next: offsetOf(body.next_batch),
      totalRooms: offsetOf(body.total_rooms),
    };
  }

  /** One page of `roomId`'s history after `from` (null: from the start). */
  async messages(
    roomId: string,
    from: string | null,
    limit: number,
    signal: AbortSignal,
  ): Promise<MessagesPage> {
    const query = `dir=f&limit=${limit}${from === null ? "" : `&from=${encodeURIComponent(from)}`}`;
    const path = `/_synapse/admin/v1/rooms/${encodeURIComponent(roomId)}/messages?${query}`;
    let answer: { status: number; json: unknown };
    try {
      answer = await this.#get(path, MESSAGES_MAX_BYTES, signal);
    } catch (error) {
      const reason = unusableReason(error);
      if (reason === undefined) throw error;
      return { kind: "unusable", reason };
    }
    const body = objectOf(answer.json);
    if (answer.status !== 200) return { kind: "unusable", reason: describe(answer) };
    if (!body || !Array.isArray(body.chunk)) {
      return { kind: "unusable", reason: "the answer is not a messages page (no chunk array)" };
    }
    if (body.chunk.length > limit) {
      return { kind: "unusable", reason: `${body.chunk.length} events for limit=${limit}` };
    }
    const end = body.end;
    if (end !== undefined && !isToken(end)) {
      return { kind: "unusable", reason: "the answer's end is not a pagination token" };
    }
    const events: PushedEvent[] = [];
    for (const raw of body.chunk) {
      const event = parsePushedEvent(raw);
      if (event && event.roomId === roomId) events.push(event);
    }
    return {
      kind: "page",
      events,
      skipped: body.chunk.length - events.length,
      end: body.chunk.length > 0 ? end : undefined,
      size: body.chunk.length,
    };
  }

  async #get(path: string, maxBytes: number, signal: AbortSignal) {
    const answer = await this.homeserver.get(path, {
      accessToken: this.adminToken,
      maxBytes,
      signal,
    });
    if (answer.status === 401 || answer.status === 403) {
      const errcode = objectOf(answer.json)?.errcode;
      throw new AdminTokenRefusedError(
        answer.status,
        typeof errcode === "string" ? errcode.slice(0, 64) : "no errcode",
      );
    }
    return answer;
  }
}

/** A failure that concerns this page only (not the homeserver being down); else undefined. */
function unusableReason(error: unknown): string | undefined {
  if (!(error instanceof HomeserverUnavailableError)) return undefined;
  const cause = error.cause as { name?: string } | undefined;
  if (cause?.name === "ResponseTooLargeError") {
    return `a page larger than ${MESSAGES_MAX_BYTES} bytes`;
  }
  // A 2xx/4xx body that is not JSON is garbage, not an outage (a 5xx is).
  if (error.status !== undefined && error.status < 500) return error.message;
  return undefined;
}

function describe(answer: { status: number; json: unknown }): string {
  const errcode = objectOf(answer.json)?.errcode;
  return `the homeserver answered ${answer.status}${typeof errcode === "string" ? ` ${errcode.slice(0, 64)}` : ""}`;
}

/** A non-negative integer (or its decimal string, as some servers send); else undefined. */
function offsetOf(value: unknown): number | undefined {
  if (typeof value === "number" && Number.isSafeInteger(value) && value >= 0) return value;
  if (typeof value === "string" && /^\d{1,15}$/.test(value)) return Number(value);
  return undefined;
}

/** A pagination token: a non-empty string of printable characters, bounded. */
function isToken(value: unknown): value is string {
  return (
    typeof value === "string" &&
    value.length > 0 &&
    value.length <= MAX_TOKEN_LENGTH &&
    // biome-ignore lint/suspicious/noControlCharactersInRegex: refusing them is the point.
    !/[\u0000-\u001f\u007f]/.test(value)
  );
}
