/**
 * The content part of the Matrix redaction algorithm (spec, client-server API
 * "Redactions", and the room version 9/10 rules of the room version specs),
 * for the room version mxcd creates ("10"). Everything not listed below is
 * removed; keys of the event itself (type, sender, state_key, ...) stay.
 *
 * Room version 11 would additionally keep all of `m.room.create`, `invite` in
 * power levels and `redacts` in redactions; mxcd does not create v11 rooms.
 */

/** Content keys that survive a redaction, per event type (room versions 9 and 10). */
const KEPT_CONTENT_KEYS: Readonly<Record<string, readonly string[]>> = {
  "m.room.member": ["membership", "join_authorised_via_users_server"],
  "m.room.create": ["creator"],
  "m.room.join_rules": ["join_rule", "allow"],
  "m.room.power_levels": [
    "ban",
    "events",
    "events_default",
    "kick",
    "redact",
    "state_default",
    "users",
    "users_default",
  ],
  "m.room.history_visibility": ["history_visibility"],
};

/** The censored copy of `content` for an event of `type`; never mutates its input. */
export function redactContent(
  type: string,
  content: Readonly<Record<string, unknown>>,
): Record<string, unknown> {
  const kept = KEPT_CONTENT_KEYS[type] ?? [];
  const result: Record<string, unknown> = {};
  for (const key of kept) {
    if (Object.hasOwn(content, key)) result[key] = content[key];
  }
  return result;
}
