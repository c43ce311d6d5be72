/**
 * Synapse's room admin API, the parts admin tools read: a room's media (A2,
 * served from the media-reference index, merged with the homeserver's list in
 * the attached shape), the room list and one room's details, with Synapse's
 * shapes and parameter errors.
 */
import type { FastifyInstance } from "fastify";
import { MatrixError } from "../../domain/matrix-error.js";
import { ROOM_ORDER_BY, type Room } from "../../domain/room.js";
import type { RoomMediaCaller, RoomMediaUris } from "../../homeserver/room-media-source.js";
import type { RoomAdminService } from "../../rooms/room-admin-service.js";
import { type Auth, accessTokenOf } from "../auth.js";
import { booleanParam, enumParam, firstParam, integerParam, type Query } from "../query-params.js";

/** The services behind the room admin routes. */
export interface RoomAdminRouteDeps {
  auth: Auth;
  admin: RoomAdminService;
  /**
   * A room's media: the index (RoomAdminService) standalone, the index and
   * the homeserver (RoomMediaSource) attached.
   */
  media: { roomMediaUris(roomId: string, caller: RoomMediaCaller): Promise<RoomMediaUris> };
}

type RoomParams = { Params: { roomId: string } };

/** Registers the room media list, room list and room details (admin only). */
export function registerRoomAdminRoutes(app: FastifyInstance, deps: RoomAdminRouteDeps): void {
  // Standalone: no validation and no existence check, as Synapse (an unknown
  // room has no media). Attached: a malformed id is 400 (RoomMediaSource).
  app.get<RoomParams>("/_synapse/admin/v1/room/:roomId/media", async (request) => {
    await deps.auth.requireAdmin(request);
    const caller = { accessToken: accessTokenOf(request) ?? "", clientAddress: request.ip };
    return deps.media.roomMediaUris(request.params.roomId, caller);
  });

  app.get("/_synapse/admin/v1/rooms", async (request) => {
    await deps.auth.requireAdmin(request);
    const query = request.query as Query;
    const from = integerParam(query, "from", 0);
    const limit = integerParam(query, "limit", 100);
    const orderBy = enumParam(query, "order_by", ROOM_ORDER_BY) ?? "name";
    const searchTerm = firstParam(query, "search_term");
    if (searchTerm === "") {
      throw new MatrixError("M_INVALID_PARAM", "search_term cannot be an empty string");
    }
    const { rooms, total } = await deps.admin.listRooms({
      from,
      limit,
      orderBy,
      direction: enumParam(query, "dir", ["b", "f"] as const) ?? "f",
      searchTerm,
      publicRooms: booleanParam(query, "public_rooms"),
      emptyRooms: booleanParam(query, "empty_rooms"),
    });
    return {
      rooms: rooms.map(listEntry),
      offset: from,
      total_rooms: total,
      ...(from + limit < total && { next_batch: from + limit }),
      ...(from > 0 && { prev_batch: Math.max(0, from - limit) }),
    };
  });

  app.get<RoomParams>("/_synapse/admin/v1/rooms/:roomId", async (request) => {
    await deps.auth.requireAdmin(request);
    const found = await deps.admin.room(request.params.roomId);
    if (!found) throw new MatrixError("M_NOT_FOUND", "Room not found");
    return {
      ...listEntry(found.room),
      topic: found.room.topic,
      avatar: found.room.avatar,
      joined_local_devices: found.joinedLocalDevices,
      forgotten: false,
    };
  });
}

/** A room in the list's shape (Synapse's 15 fields). */
function listEntry(room: Room) {
  return {
    room_id: room.roomId,
    name: room.name,
    canonical_alias: room.canonicalAlias,
    joined_members: room.joinedMembers,
    joined_local_members: room.joinedLocalMembers,
    version: room.roomVersion,
    creator: room.creator,
    encryption: room.encryption,
    federatable: room.federatable,
    public: room.isPublic,
    join_rules: room.joinRules,
    guest_access: room.guestAccess,
    history_visibility: room.historyVisibility,
    state_events: room.stateEvents,
    room_type: room.roomType,
  };
}
