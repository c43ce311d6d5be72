/**
 * Room creation and membership (client-server API "Creation", "Room
 * membership", "joined_rooms"), on the v3 and legacy r0 prefixes. Room
 * aliases are not implemented: joining `#alias` is 404 M_NOT_FOUND.
 */
import type { FastifyInstance } from "fastify";
import { MatrixError } from "../../domain/matrix-error.js";
import { parseCreateRoomRequest } from "../../rooms/create-room-request.js";
import type { MembershipService } from "../../rooms/membership-service.js";
import type { RoomReadService } from "../../rooms/room-read-service.js";
import type { RoomService } from "../../rooms/room-service.js";
import type { Auth } from "../auth.js";
import { jsonObject } from "../json-body.js";

/** The services behind the room routes. */
export interface RoomRouteDeps {
  auth: Auth;
  rooms: RoomService;
  memberships: MembershipService;
  reads: RoomReadService;
}

const PREFIXES = ["/_matrix/client/v3", "/_matrix/client/r0"] as const;

type RoomParams = { Params: { roomId: string } };

/** Registers createRoom, join, invite, leave and joined_rooms on both prefixes. */
export function registerRoomRoutes(app: FastifyInstance, deps: RoomRouteDeps): void {
  for (const prefix of PREFIXES) {
    app.post(`${prefix}/createRoom`, async (request) => {
      const { userId } = await deps.auth.requireUser(request);
      const roomId = await deps.rooms.createRoom(
        userId,
        parseCreateRoomRequest(jsonObject(request.body)),
      );
      return { room_id: roomId };
    });

    app.post<RoomParams>(`${prefix}/rooms/:roomId/join`, async (request) => {
      const { userId } = await deps.auth.requireUser(request);
      jsonObject(request.body);
      return { room_id: await deps.memberships.join(userId, request.params.roomId) };
    });

    app.post<{ Params: { target: string } }>(`${prefix}/join/:target`, async (request) => {
      const { userId } = await deps.auth.requireUser(request);
      jsonObject(request.body);
      const target = request.params.target;
      if (target.startsWith("#")) throw new MatrixError("M_NOT_FOUND", "Room alias not found");
      if (!target.startsWith("!")) {
        throw new MatrixError("M_INVALID_PARAM", `${target} was not legal room ID or room alias`);
      }
      return { room_id: await deps.memberships.join(userId, target) };
    });

    app.post<RoomParams>(`${prefix}/rooms/:roomId/invite`, async (request) => {
      const { userId } = await deps.auth.requireUser(request);
      const invitee = jsonObject(request.body).user_id;
      if (typeof invitee !== "string") {
        throw new MatrixError("M_BAD_JSON", "Missing or invalid 'user_id'");
      }
      await deps.memberships.invite(userId, request.params.roomId, invitee);
      return {};
    });

    app.post<RoomParams>(`${prefix}/rooms/:roomId/leave`, async (request) => {
      const { userId } = await deps.auth.requireUser(request);
      jsonObject(request.body);
      await deps.memberships.leave(userId, request.params.roomId);
      return {};
    });

    app.get(`${prefix}/joined_rooms`, async (request) => {
      const { userId } = await deps.auth.requireUser(request);
      return { joined_rooms: await deps.reads.joinedRooms(userId) };
    });
  }
}
