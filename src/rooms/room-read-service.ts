/**
 * Reading rooms: one event, one piece of state, a page of the timeline, the
 * user's rooms. Only joined members read a room (mxcd does not implement
 * history visibility for former members); the timeline is paged by keyset on
 * the stream ordering, with tokens `s<stream ordering>`.
 */
import { MatrixError } from "../domain/matrix-error.js";
import { type StoredEvent, toClientEvent } from "../domain/room-event.js";
import type { EventRepository } from "../repositories/event-repository.js";
import type { RoomStateRepository } from "../repositories/room-state-repository.js";
import type { RoomAccess } from "./room-access.js";

/** One `/messages` request, parsed. */
export interface MessagesQuery {
  /** A token from an earlier page; absent: the newest end (`b`) or the oldest (`f`). */
  readonly from?: string;
  readonly direction: "b" | "f";
  readonly limit: number;
}

const TOKEN = /^s(\d{1,15})$/;

/** The stream position a pagination token names; 400 M_INVALID_PARAM when malformed. */
export function parseStreamToken(token: string): number {
  const match = TOKEN.exec(token);
  if (!match) throw new MatrixError("M_INVALID_PARAM", "Invalid pagination token");
  return Number(match[1]);
}

function streamToken(position: number): string {
  return `s${position}`;
}

/** Room reads for joined members; errors are MatrixErrors. */
export class RoomReadService {
  constructor(
    private readonly access: RoomAccess,
    private readonly events: EventRepository,
    private readonly state: RoomStateRepository,
    private readonly now: () => number = Date.now,
  ) {}

  /** One event of the room in client format; 404 when unknown or not readable by `userId`. */
  async event(userId: string, roomId: string, eventId: string) {
    try {
      await this.access.requireReader(roomId, userId);
    } catch (error) {
      if (error instanceof MatrixError && error.errcode === "M_FORBIDDEN") throw notFound();
      throw error;
    }
    const event = await this.events.get(eventId);
    if (!event || event.roomId !== roomId) throw notFound();
    return (await this.serialize([event]))[0]!;
  }

  /** The content of the current state event (type, state key); 404 when there is none. */
  async stateContent(userId: string, roomId: string, type: string, stateKey: string) {
    await this.access.requireReader(roomId, userId);
    const content = await this.state.content(roomId, type, stateKey);
    if (!content) throw new MatrixError("M_NOT_FOUND", "Event not found.");
    return content;
  }

  /** A page of the timeline: `{chunk, start, end?}`; `end` is left out at the end of history. */
  async messages(userId: string, roomId: string, query: MessagesQuery) {
    await this.access.requireReader(roomId, userId);
    const position =
      query.from !== undefined
        ? parseStreamToken(query.from)
        : query.direction === "b"
          ? await this.events.currentPosition()
          : 0;
    const chunk =
      query.limit === 0
        ? []
        : await this.events.page({
            roomId,
            direction: query.direction,
            position,
            limit: query.limit,
          });
    const last = chunk.at(-1);
    const more = last !== undefined && chunk.length === query.limit;
    const end = query.direction === "b" ? (last?.streamOrdering ?? 0) - 1 : last?.streamOrdering;
    return {
      chunk: await this.serialize(chunk),
      start: streamToken(position),
      ...(more && end !== undefined && { end: streamToken(end) }),
    };
  }

  /** The rooms `userId` has joined. */
  joinedRooms(userId: string): Promise<string[]> {
    return this.state.joinedRooms(userId);
  }

  /** Client format, with `unsigned.redacted_because` for censored events (one extra query). */
  private async serialize(events: readonly StoredEvent[]) {
    const redactionIds = events.flatMap((e) => (e.redactedBy ? [e.redactedBy] : []));
    const redactions = new Map(
      (await this.events.getMany(redactionIds)).map((e) => [e.eventId, e] as const),
    );
    const now = this.now();
    return events.map((e) =>
      toClientEvent(e, now, e.redactedBy ? redactions.get(e.redactedBy) : undefined),
    );
  }
}

function notFound(): MatrixError {
  return new MatrixError("M_NOT_FOUND", "Event not found.");
}
