/**
 * The content of `m.room.member` events mxcd writes: the membership plus, for
 * joins and invites, the user's global profile (display name and avatar), as
 * Synapse copies it into every room.
 */
import type { JsonObject } from "../domain/room-event.js";

/** A user's global profile, as far as member events need it. */
export interface MemberProfile {
  readonly displayname: string | null;
  readonly avatarUrl: string | null;
}

/** Looks up the profile of a user; undefined for unknown (e.g. remote) users. */
export type ProfileLookup = (userId: string) => Promise<MemberProfile | undefined>;

/** `{membership, displayname?, avatar_url?}`; nulls are left out. */
export function memberContent(membership: string, profile?: MemberProfile): JsonObject {
  const content: JsonObject = { membership };
  if (profile?.displayname != null) content.displayname = profile.displayname;
  if (profile?.avatarUrl != null) content.avatar_url = profile.avatarUrl;
  return content;
}
