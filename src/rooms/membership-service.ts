/**
 * Joining, inviting and leaving (client-server API "Room membership"), with
 * the join rules mxcd enforces: anyone may join a `public` room; any other
 * room needs a pending invite; the banned may not join. Joins and invites
 * carry the user's global profile, and a profile change is copied into every
 * room the user has joined, as Synapse does.
 */
import { MatrixError } from "../domain/matrix-error.js";
import { parseUserId } from "../identifiers/user-id.js";
import type { RoomStateRepository } from "../repositories/room-state-repository.js";
import type { EventWriter } from "./event-writer.js";
import { memberContent, type ProfileLookup } from "./member-content.js";
import { actionLevel } from "./power-levels.js";
import type { RoomAccess } from "./room-access.js";

/** What membership changes read and write through. */
export interface MembershipServiceDeps {
  readonly serverName: string;
  readonly access: RoomAccess;
  readonly state: RoomStateRepository;
  readonly writer: EventWriter;
  readonly profiles: ProfileLookup;
}

/** join, invite, leave and profile propagation; errors are MatrixErrors. */
export class MembershipService {
  constructor(private readonly deps: MembershipServiceDeps) {}

  /** Joins `userId` to the room; already joined is a no-op. Returns the room id. */
  async join(userId: string, roomId: string): Promise<string> {
    const room = await this.deps.access.room(roomId);
    const membership = await this.deps.state.membership(roomId, userId);
    if (membership === "join") return roomId;
    if (membership === "ban") throw new MatrixError("M_FORBIDDEN", "You are banned from this room");
    if (room.joinRules !== "public" && membership !== "invite") {
      throw new MatrixError("M_FORBIDDEN", "You are not invited to this room.");
    }
    await this.writeMember(roomId, userId, userId, "join");
    return roomId;
  }

  /** `inviter` invites `invitee`; 403 when the inviter is not joined or lacks power. */
  async invite(inviter: string, roomId: string, invitee: string): Promise<void> {
    const { domain } = parseUserId(invitee);
    const room = await this.deps.access.joinedRoom(roomId, inviter);
    await this.deps.access.requireLevel(room, inviter, "invite", (levels) =>
      actionLevel(levels, "invite"),
    );
    const current = await this.deps.state.membership(roomId, invitee);
    if (current === "invite") return;
    if (current === "join") {
      throw new MatrixError("M_FORBIDDEN", `${invitee} is already in the room.`);
    }
    if (current === "ban") {
      throw new MatrixError("M_FORBIDDEN", `${invitee} is banned from the room`);
    }
    if (domain === this.deps.serverName && !(await this.deps.profiles(invitee))) {
      throw new MatrixError("M_NOT_FOUND", "Unknown user");
    }
    await this.writeMember(roomId, inviter, invitee, "invite");
  }

  /** Leaves the room (or rejects an invite); leaving a room one has left is a no-op. */
  async leave(userId: string, roomId: string): Promise<void> {
    await this.deps.access.room(roomId);
    const membership = await this.deps.state.membership(roomId, userId);
    if (membership === "leave") return;
    if (membership !== "join" && membership !== "invite") {
      throw new MatrixError("M_FORBIDDEN", `User ${userId} not in room ${roomId}`);
    }
    await this.writeMember(roomId, userId, userId, "leave");
  }

  /** Writes a fresh join event with the user's current profile into each room they have joined. */
  async refreshProfile(userId: string): Promise<void> {
    for (const roomId of await this.deps.state.joinedRooms(userId)) {
      await this.writeMember(roomId, userId, userId, "join");
    }
  }

  private async writeMember(roomId: string, sender: string, target: string, membership: string) {
    const profile = membership === "leave" ? undefined : await this.deps.profiles(target);
    await this.deps.writer.write([
      {
        roomId,
        sender,
        type: "m.room.member",
        stateKey: target,
        content: memberContent(membership, profile),
      },
    ]);
  }
}
