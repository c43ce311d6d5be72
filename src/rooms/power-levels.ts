/**
 * Power-level arithmetic (Matrix spec, `m.room.power_levels`, and the
 * authorization rules of the room versions). Pure functions over the content
 * of the room's current power-levels event; a room without one gives every
 * user 0 and the creator 100, as the spec's defaults say.
 */

/** The content of an `m.room.power_levels` event, as stored. */
export type PowerLevels = Readonly<Record<string, unknown>>;

/** What the default power levels of a new room look like (Synapse's choices). */
export function defaultPowerLevels(creator: string): Record<string, unknown> {
  return {
    users: { [creator]: 100 },
    users_default: 0,
    events: {
      "m.room.name": 50,
      "m.room.power_levels": 100,
      "m.room.history_visibility": 100,
      "m.room.canonical_alias": 50,
      "m.room.avatar": 50,
      "m.room.tombstone": 100,
      "m.room.server_acl": 100,
      "m.room.encryption": 100,
    },
    events_default: 0,
    state_default: 50,
    ban: 50,
    kick: 50,
    redact: 50,
    invite: 0,
  };
}

function integer(value: unknown, fallback: number): number {
  return typeof value === "number" && Number.isInteger(value) ? value : fallback;
}

function record(value: unknown): Readonly<Record<string, unknown>> {
  return typeof value === "object" && value !== null ? (value as Record<string, unknown>) : {};
}

/** A user's level: `users[userId]`, else `users_default`; the creator has 100 without an event. */
export function userLevel(levels: PowerLevels | undefined, userId: string, creator: string) {
  if (!levels) return userId === creator ? 100 : 0;
  return integer(record(levels.users)[userId], integer(levels.users_default, 0));
}

/**
 * The level needed to send an event of `type`. `state_default` is 50 when the
 * event omits it but 0 when the room has no power-levels event at all (spec).
 */
export function eventLevel(levels: PowerLevels | undefined, type: string, isState: boolean) {
  if (!levels) return 0;
  const fallback = isState ? integer(levels.state_default, 50) : integer(levels.events_default, 0);
  return integer(record(levels.events)[type], fallback);
}

/** The level a named action needs: `invite` (default 0), `redact`, `kick`, `ban` (default 50). */
export function actionLevel(
  levels: PowerLevels | undefined,
  action: "invite" | "redact" | "kick" | "ban",
) {
  return integer(levels?.[action], action === "invite" ? 0 : 50);
}
