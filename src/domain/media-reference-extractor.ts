/**
 * Which `mxc://` URIs an event references, decided once when the event is
 * stored (the media-reference index; synapse-media-admin.md §11 item 13).
 *
 * Compared with Synapse's room media scan (A2), this also finds member
 * `avatar_url`s, events carrying only a thumbnail, and the `url` of
 * `file` / `info.thumbnail_file` objects; like Synapse it finds nothing in
 * `m.room.encrypted` events, whose content is ciphertext.
 */
import { type MxcUri, parseMxcUri } from "../identifiers/mxc-uri.js";

/**
 * How media is referenced. `thumbnail` sorts after the main URL of the same
 * event; `profile_avatar` references come from profiles, never from events.
 */
export type ReferenceKind =
  | "url"
  | "thumbnail"
  | "room_avatar"
  | "member_avatar"
  | "profile_avatar";

/** One reference found in an event. */
export interface ExtractedReference extends MxcUri {
  readonly kind: ReferenceKind;
}

type Json = Record<string, unknown>;

function objectOf(value: unknown): Json | undefined {
  return typeof value === "object" && value !== null && !Array.isArray(value)
    ? (value as Json)
    : undefined;
}

/**
 * The references in an event's content, main URL first, each distinct
 * (kind, origin, media id) once. `stateKey` is undefined for message events:
 * only a state `m.room.avatar` is a room avatar and only a state
 * `m.room.member` carries a member avatar.
 */
export function extractMediaReferences(
  type: string,
  stateKey: string | undefined,
  content: unknown,
): ExtractedReference[] {
  const body = objectOf(content);
  if (!body || type === "m.room.encrypted") return [];
  const found: ExtractedReference[] = [];
  const add = (kind: ReferenceKind, value: unknown) => {
    const mxc = parseMxcUri(value);
    if (!mxc) return;
    const seen = found.some(
      (r) => r.kind === kind && r.origin === mxc.origin && r.mediaId === mxc.mediaId,
    );
    if (!seen) found.push({ kind, ...mxc });
  };

  if (type === "m.room.member" && stateKey !== undefined) {
    add("member_avatar", body.avatar_url);
    return found;
  }
  add(type === "m.room.avatar" && stateKey === "" ? "room_avatar" : "url", body.url);
  add("url", objectOf(body.file)?.url);
  const info = objectOf(body.info);
  add("thumbnail", info?.thumbnail_url);
  add("thumbnail", objectOf(info?.thumbnail_file)?.url);
  return found;
}
