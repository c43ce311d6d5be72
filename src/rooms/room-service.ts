/**
 * Writing to rooms: creating them, sending message and state events, and
 * redacting (client-server API "Creation", "Sending events", "Redactions").
 * Sends and redactions are idempotent per access token and transaction id.
 * After a redaction commits, the media redaction policy judges the media the
 * redacted event referenced (media-redaction-policy.ts).
 */
import { MatrixError } from "../domain/matrix-error.js";
import { checkEventContent, type JsonObject } from "../domain/room-event.js";
import { newRoomId } from "../identifiers/room-id.js";
import type { EventRepository } from "../repositories/event-repository.js";
import { type CreateRoomRequest, ROOM_VERSION } from "./create-room-request.js";
import type { EventWriter } from "./event-writer.js";
import type { MediaRedactionPolicy } from "./media-redaction-policy.js";
import { memberContent, type ProfileLookup } from "./member-content.js";
import { actionLevel, eventLevel } from "./power-levels.js";
import type { RoomAccess } from "./room-access.js";
import { initialRoomEvents } from "./room-presets.js";

/** The caller of a write: who, the access token (hash) that scopes txn ids, server admin or not. */
export interface Sender {
  readonly userId: string;
  readonly tokenHash: string;
  /** A server admin (not a room moderator); widens the media redaction policy. */
  readonly admin: boolean;
}

/** What room writes read and write through. */
export interface RoomServiceDeps {
  readonly serverName: string;
  readonly access: RoomAccess;
  readonly writer: EventWriter;
  readonly events: EventRepository;
  readonly profiles: ProfileLookup;
  readonly redactionPolicy: MediaRedactionPolicy;
  readonly now: () => number;
}

/** Room creation, sends, state changes and redactions; errors are MatrixErrors. */
export class RoomService {
  constructor(private readonly deps: RoomServiceDeps) {}

  /** Creates a room with the creator joined; returns its id. Local invitees must exist (404). */
  async createRoom(creator: string, request: CreateRoomRequest): Promise<string> {
    const roomId = newRoomId(this.deps.serverName);
    const inviteeMembers = new Map<string, JsonObject>();
    for (const userId of request.invite) {
      if (userId === creator) continue;
      const profile = await this.deps.profiles(userId);
      if (!profile && userId.endsWith(`:${this.deps.serverName}`)) {
        throw new MatrixError("M_NOT_FOUND", `Unknown user ${userId}`);
      }
      const content = memberContent("invite", profile);
      if (request.isDirect) content.is_direct = true;
      inviteeMembers.set(userId, content);
    }
    const creatorMember = memberContent("join", await this.deps.profiles(creator));
    const events = initialRoomEvents(request, { roomId, creator, creatorMember, inviteeMembers });
    // initial_state, creation_content and the power-level override obey the event limits too.
    for (const event of events) checkEvent(event.type, event.content);
    await this.deps.writer.write(events, {
      newRoom: {
        roomId,
        roomVersion: ROOM_VERSION,
        creator,
        isPublic: request.visibility === "public",
        createdTs: this.deps.now(),
      },
    });
    return roomId;
  }

  /** `PUT /rooms/{roomId}/send/{eventType}/{txnId}`: returns the event id. */
  async send(sender: Sender, roomId: string, type: string, txnId: string, content: JsonObject) {
    const transaction = { tokenHash: sender.tokenHash, scope: `send ${roomId} ${type}`, txnId };
    const replay = await this.deps.events.findTransaction(transaction);
    if (replay) return replay;
    checkEvent(type, content);
    const room = await this.deps.access.joinedRoom(roomId, sender.userId);
    await this.deps.access.requireLevel(room, sender.userId, "post that to the room", (levels) =>
      eventLevel(levels, type, false),
    );
    const { eventIds } = await this.deps.writer.write(
      [{ roomId, sender: sender.userId, type, content }],
      { transaction },
    );
    return eventIds.at(-1)!;
  }

  /**
   * `PUT /rooms/{roomId}/state/{eventType}/{stateKey}`. Membership changes
   * go through the membership endpoints; here a member may only update their
   * own join event (per-room display name or avatar).
   */
  async setState(
    sender: Sender,
    roomId: string,
    type: string,
    stateKey: string,
    content: JsonObject,
  ) {
    checkEvent(type, content);
    const room = await this.deps.access.joinedRoom(roomId, sender.userId);
    if (type === "m.room.create") {
      throw new MatrixError("M_FORBIDDEN", "The create event cannot be replaced");
    }
    if (stateKey.startsWith("@") && stateKey !== sender.userId) {
      throw new MatrixError("M_FORBIDDEN", "You cannot set the state of another user");
    }
    if (type === "m.room.member") {
      // Only one's own join event, which needs no power (as a profile update).
      if (stateKey !== sender.userId || content.membership !== "join") {
        throw new MatrixError("M_FORBIDDEN", "Use the membership endpoints to change membership");
      }
    } else {
      await this.deps.access.requireLevel(room, sender.userId, "set that state", (levels) =>
        eventLevel(levels, type, true),
      );
    }
    const { eventIds } = await this.deps.writer.write([
      { roomId, sender: sender.userId, type, stateKey, content },
    ]);
    return eventIds.at(-1)!;
  }

  /**
   * `PUT /rooms/{roomId}/redact/{eventId}/{txnId}`: the target must be an
   * event of this room (404 otherwise); redacting another user's event needs
   * the `redact` power level.
   */
  async redact(sender: Sender, roomId: string, targetId: string, txnId: string, reason?: string) {
    const transaction = {
      tokenHash: sender.tokenHash,
      scope: `redact ${roomId} ${targetId}`,
      txnId,
    };
    const replay = await this.deps.events.findTransaction(transaction);
    if (replay) return replay;
    const room = await this.deps.access.joinedRoom(roomId, sender.userId);
    const target = await this.deps.events.get(targetId);
    if (!target || target.roomId !== roomId) {
      throw new MatrixError("M_NOT_FOUND", "Event not found");
    }
    if (target.sender !== sender.userId) {
      await this.deps.access.requireLevel(room, sender.userId, "redact", (levels) =>
        actionLevel(levels, "redact"),
      );
    }
    const content: JsonObject = reason === undefined ? {} : { reason };
    const result = await this.deps.writer.write(
      [{ roomId, sender: sender.userId, type: "m.room.redaction", content, redacts: targetId }],
      { transaction },
    );
    for (const redactedEvent of result.redacted) {
      await this.deps.redactionPolicy.apply({
        redactedEvent,
        redactingSender: sender.userId,
        redactingSenderIsAdmin: sender.admin,
      });
    }
    return result.eventIds.at(-1)!;
  }
}

/** 400 for an empty or overlong type; then `checkEventContent` (depth 400, size 413). */
function checkEvent(type: string, content: JsonObject): void {
  if (type.length === 0 || type.length > 255) {
    throw new MatrixError("M_INVALID_PARAM", "Invalid event type");
  }
  checkEventContent(content);
}
