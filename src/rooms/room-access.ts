/**
 * The checks every room endpoint starts with, with Synapse's errcodes:
 * a malformed room id is 400 M_INVALID_PARAM, an unknown room 404
 * M_NOT_FOUND (writes) or 403 (reads), a non-member 403 M_FORBIDDEN, too
 * little power 403 M_FORBIDDEN.
 */
import { MatrixError } from "../domain/matrix-error.js";
import type { Room } from "../domain/room.js";
import { isValidRoomId } from "../identifiers/room-id.js";
import type { RoomRepository } from "../repositories/room-repository.js";
import type { RoomStateRepository } from "../repositories/room-state-repository.js";
import { type PowerLevels, userLevel } from "./power-levels.js";

/** Room lookups and permission checks shared by the room services. */
export class RoomAccess {
  constructor(
    private readonly rooms: RoomRepository,
    private readonly state: RoomStateRepository,
  ) {}

  /** The room, or 400 for a malformed id and 404 for an unknown one. */
  async room(roomId: string): Promise<Room> {
    if (!isValidRoomId(roomId)) throw new MatrixError("M_INVALID_PARAM", "Invalid room ID");
    const room = await this.rooms.get(roomId);
    if (!room) throw new MatrixError("M_NOT_FOUND", "Unknown room");
    return room;
  }

  /** The room, if `userId` is joined to it; 403 otherwise (and 400/404 as `room`). */
  async joinedRoom(roomId: string, userId: string): Promise<Room> {
    const room = await this.room(roomId);
    if ((await this.state.membership(roomId, userId)) !== "join") {
      throw new MatrixError("M_FORBIDDEN", `User ${userId} not in room ${roomId}`);
    }
    return room;
  }

  /**
   * 403 unless `userId` is joined to the room. Used by reads, where an
   * unknown room answers like one the user is not in (the spec lists 403,
   * and room existence is not revealed); a malformed id is still 400.
   */
  async requireReader(roomId: string, userId: string): Promise<void> {
    if (!isValidRoomId(roomId)) throw new MatrixError("M_INVALID_PARAM", "Invalid room ID");
    if ((await this.state.membership(roomId, userId)) !== "join") {
      throw new MatrixError("M_FORBIDDEN", `User ${userId} not in room ${roomId}`);
    }
  }

  /** The content of the room's current `m.room.power_levels`, if any. */
  private powerLevels(roomId: string): Promise<PowerLevels | undefined> {
    return this.state.content(roomId, "m.room.power_levels", "");
  }

  /**
   * 403 unless `userId` has at least the power `neededOf` reads from the
   * room's power levels (power-levels.ts); `what` names the action in the error.
   */
  async requireLevel(
    room: Room,
    userId: string,
    what: string,
    neededOf: (levels: PowerLevels | undefined) => number,
  ): Promise<void> {
    const levels = await this.powerLevels(room.roomId);
    const level = userLevel(levels, userId, room.creator);
    const needed = neededOf(levels);
    if (level < needed) {
      throw new MatrixError(
        "M_FORBIDDEN",
        `You don't have permission to ${what}. user_level (${level}) < required (${needed})`,
      );
    }
  }
}
