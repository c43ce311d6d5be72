/**
 * Room and event identifiers (Matrix spec appendices, "Room IDs" and
 * "Event IDs"). Room ids are `!<opaque>:<server_name>`, or from room
 * version 12 on `!` and the create event's reference hash (43 characters of
 * unpadded URL-safe base64, no server name); event ids are
 * `$<url-safe base64>` as in room versions 4 and later.
 */
import { randomBytes } from "node:crypto";
import { isValidServerName } from "./server-name.js";

/** Identifiers are at most 255 characters, sigil included. */
const MAX_ID_LENGTH = 255;

const LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/** A fresh room id on `serverName`: 18 random letters, as Synapse. */
export function newRoomId(serverName: string): string {
  const bytes = randomBytes(18);
  let opaque = "";
  for (const byte of bytes) opaque += LETTERS[byte % LETTERS.length];
  return `!${opaque}:${serverName}`;
}

/** A fresh event id: `$` and 32 characters of URL-safe base64 (24 random bytes). */
export function newEventId(): string {
  return `$${randomBytes(24).toString("base64url")}`;
}

/** Room version 12 and later: `!` and an unpadded URL-safe base64 SHA-256. */
const HASH_ROOM_ID = /^![A-Za-z0-9_-]{43}$/;

/**
 * True when `value` has a room id shape: `!`, a non-empty opaque part
 * without `:`, then a valid server name, at most 255 characters; or a room
 * version 12 id (`!` and 43 characters of URL-safe base64).
 */
export function isValidRoomId(value: string): boolean {
  if (value.length > MAX_ID_LENGTH || !value.startsWith("!")) return false;
  if (HASH_ROOM_ID.test(value)) return true;
  const colon = value.indexOf(":");
  if (colon < 2) return false;
  return isValidServerName(value.slice(colon + 1));
}
