/**
 * The per-room statistics the admin room API reports (Synapse's
 * room_stats_state columns), derived from one current state event. Pure, so
 * the same function serves a new state event and a redacted one.
 */

/** Columns of the `rooms` table that mirror a current state event. */
export interface RoomStateStats {
  name?: string | null;
  topic?: string | null;
  avatar?: string | null;
  canonical_alias?: string | null;
  encryption?: string | null;
  join_rules?: string | null;
  guest_access?: string | null;
  history_visibility?: string | null;
  federatable?: boolean;
  room_type?: string | null;
}

function text(value: unknown): string | null {
  return typeof value === "string" ? value : null;
}

/**
 * The stats columns that the state event (`type`, empty state key) sets,
 * or undefined when the type is not one the stats track.
 */
export function statsForState(
  type: string,
  content: Readonly<Record<string, unknown>>,
): RoomStateStats | undefined {
  switch (type) {
    case "m.room.name":
      return { name: text(content.name) };
    case "m.room.topic":
      return { topic: text(content.topic) };
    case "m.room.avatar":
      return { avatar: text(content.url) };
    case "m.room.canonical_alias":
      return { canonical_alias: text(content.alias) };
    case "m.room.encryption":
      return { encryption: text(content.algorithm) };
    case "m.room.join_rules":
      return { join_rules: text(content.join_rule) };
    case "m.room.guest_access":
      return { guest_access: text(content.guest_access) };
    case "m.room.history_visibility":
      return { history_visibility: text(content.history_visibility) };
    case "m.room.create":
      return { federatable: content["m.federate"] !== false, room_type: text(content.type) };
    default:
      return undefined;
  }
}
