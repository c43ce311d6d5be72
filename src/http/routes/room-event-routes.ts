/**
 * Sending and reading room events (client-server API "Sending events",
 * "Getting events for a room", "Redactions"), on v3 and r0. A state path
 * without the state-key segment means the empty state key.
 */
import type { FastifyInstance, FastifyRequest } from "fastify";
import type { RoomReadService } from "../../rooms/room-read-service.js";
import type { RoomService, Sender } from "../../rooms/room-service.js";
import type { Auth } from "../auth.js";
import { jsonObject, optionalField } from "../json-body.js";
import { enumParam, firstParam, integerParam, type Query } from "../query-params.js";

/** The services behind the event routes. */
export interface RoomEventRouteDeps {
  auth: Auth;
  rooms: RoomService;
  reads: RoomReadService;
}

const PREFIXES = ["/_matrix/client/v3", "/_matrix/client/r0"] as const;

/** Largest `/messages` page. */
const MAX_PAGE = 1000;

type StateParams = { Params: { roomId: string; eventType: string; stateKey?: string } };

/** Registers send, state, redact, event and messages on both prefixes. */
export function registerRoomEventRoutes(app: FastifyInstance, deps: RoomEventRouteDeps): void {
  const sender = async (request: FastifyRequest): Promise<Sender> => {
    const { userId, tokenHash, admin } = await deps.auth.requireUser(request);
    return { userId, tokenHash, admin };
  };

  for (const prefix of PREFIXES) {
    app.put<{ Params: { roomId: string; eventType: string; txnId: string } }>(
      `${prefix}/rooms/:roomId/send/:eventType/:txnId`,
      async (request) => {
        const { roomId, eventType, txnId } = request.params;
        const content = jsonObject(request.body);
        const eventId = await deps.rooms.send(
          await sender(request),
          roomId,
          eventType,
          txnId,
          content,
        );
        return { event_id: eventId };
      },
    );

    const putState = async (request: FastifyRequest<StateParams>) => {
      const { roomId, eventType, stateKey = "" } = request.params;
      const content = jsonObject(request.body);
      const eventId = await deps.rooms.setState(
        await sender(request),
        roomId,
        eventType,
        stateKey,
        content,
      );
      return { event_id: eventId };
    };
    const getState = async (request: FastifyRequest<StateParams>) => {
      const { userId } = await deps.auth.requireUser(request);
      const { roomId, eventType, stateKey = "" } = request.params;
      return deps.reads.stateContent(userId, roomId, eventType, stateKey);
    };
    for (const path of [
      "/rooms/:roomId/state/:eventType",
      "/rooms/:roomId/state/:eventType/:stateKey",
    ]) {
      app.put<StateParams>(`${prefix}${path}`, putState);
      app.get<StateParams>(`${prefix}${path}`, getState);
    }

    app.put<{ Params: { roomId: string; eventId: string; txnId: string } }>(
      `${prefix}/rooms/:roomId/redact/:eventId/:txnId`,
      async (request) => {
        const { roomId, eventId, txnId } = request.params;
        const reason = optionalField(jsonObject(request.body), "reason", "string");
        const id = await deps.rooms.redact(await sender(request), roomId, eventId, txnId, reason);
        return { event_id: id };
      },
    );

    app.get<{ Params: { roomId: string; eventId: string } }>(
      `${prefix}/rooms/:roomId/event/:eventId`,
      async (request) => {
        const { userId } = await deps.auth.requireUser(request);
        return deps.reads.event(userId, request.params.roomId, request.params.eventId);
      },
    );

    app.get<{ Params: { roomId: string } }>(`${prefix}/rooms/:roomId/messages`, async (request) => {
      const { userId } = await deps.auth.requireUser(request);
      const query = request.query as Query;
      // Larger pages are cut to the cap rather than refused.
      const limit = Math.min(integerParam(query, "limit", 10), MAX_PAGE);
      return deps.reads.messages(userId, request.params.roomId, {
        from: firstParam(query, "from"),
        direction: enumParam(query, "dir", ["b", "f"] as const) ?? "b",
        limit,
      });
    });
  }
}
