/**
 * The events that make a new room (client-server API "Creation"; order and
 * defaults as Synapse): create, the creator's join, power levels, the
 * preset's join rules / history visibility / guest access (unless
 * `initial_state` sets them), the rest of `initial_state`, name, topic, and
 * the invites. Pure: the caller supplies member contents (with profiles).
 */

import type { JsonObject, NewEvent } from "../domain/room-event.js";
import type { CreateRoomRequest, RoomPreset } from "./create-room-request.js";
import { ROOM_VERSION } from "./create-room-request.js";
import { defaultPowerLevels } from "./power-levels.js";

/** The facts a new room's events need beyond the request. */
export interface RoomSeed {
  readonly roomId: string;
  readonly creator: string;
  /** Content of the creator's join event (membership and profile). */
  readonly creatorMember: JsonObject;
  /** Content of each invitee's invite event, by user id. */
  readonly inviteeMembers: ReadonlyMap<string, JsonObject>;
}

/** State each preset sets, as Synapse's room-creation presets do. */
const PRESET_STATE: Record<RoomPreset, Array<[type: string, content: JsonObject]>> = {
  private_chat: [
    ["m.room.join_rules", { join_rule: "invite" }],
    ["m.room.history_visibility", { history_visibility: "shared" }],
    ["m.room.guest_access", { guest_access: "can_join" }],
  ],
  trusted_private_chat: [
    ["m.room.join_rules", { join_rule: "invite" }],
    ["m.room.history_visibility", { history_visibility: "shared" }],
    ["m.room.guest_access", { guest_access: "can_join" }],
  ],
  public_chat: [
    ["m.room.join_rules", { join_rule: "public" }],
    ["m.room.history_visibility", { history_visibility: "shared" }],
  ],
};

/** The new room's events, in the order they are stored. */
export function initialRoomEvents(request: CreateRoomRequest, seed: RoomSeed): NewEvent[] {
  const { roomId, creator } = seed;
  const state = (type: string, content: JsonObject, stateKey = ""): NewEvent => ({
    roomId,
    sender: creator,
    type,
    stateKey,
    content,
  });
  const given = new Map(request.initialState.map((e) => [`${e.type}\u0000${e.stateKey}`, e]));
  const take = (type: string) => {
    const entry = given.get(`${type}\u0000`);
    given.delete(`${type}\u0000`);
    return entry?.content;
  };

  const events = [
    state("m.room.create", { ...request.creationContent, creator, room_version: ROOM_VERSION }),
    state("m.room.member", seed.creatorMember, creator),
    state("m.room.power_levels", powerLevels(request, creator, take("m.room.power_levels"))),
  ];
  for (const [type, content] of PRESET_STATE[request.preset]) {
    events.push(state(type, take(type) ?? content));
  }
  for (const entry of given.values()) {
    // The create event and memberships come from the request itself, never from initial_state.
    if (entry.type === "m.room.create" || entry.type === "m.room.member") continue;
    events.push(state(entry.type, entry.content, entry.stateKey));
  }
  if (request.name !== undefined) events.push(state("m.room.name", { name: request.name }));
  if (request.topic !== undefined) events.push(state("m.room.topic", { topic: request.topic }));
  for (const [userId, content] of seed.inviteeMembers) {
    events.push(state("m.room.member", content, userId));
  }
  return events;
}

/** Default power levels (or `initial_state`'s), the preset's extras, then the override. */
function powerLevels(request: CreateRoomRequest, creator: string, given?: JsonObject) {
  const levels: JsonObject = { ...(given ?? defaultPowerLevels(creator)) };
  if (request.preset === "trusted_private_chat") {
    const users = { ...(levels.users as JsonObject | undefined) };
    for (const userId of request.invite) users[userId] = 100;
    levels.users = users;
  }
  return { ...levels, ...request.powerLevelOverride };
}
