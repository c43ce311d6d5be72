/**
 * User identifiers (Matrix spec appendices, "User Identifiers") and Synapse's
 * rules for registering new local users.
 */
import { MatrixError } from "../domain/matrix-error.js";

/** Synapse's historical grammar for new localparts: `a-z 0-9 = _ - . / +`. */
const NEW_LOCALPART = /^[a-z0-9=_\-./+]+$/;

/** Matrix user ids are at most 255 characters, sigil and domain included. */
export const MAX_USER_ID_LENGTH = 255;

export interface UserId {
  readonly localpart: string;
  readonly domain: string;
}

/**
 * Splits `@localpart:domain`. Throws 400 M_INVALID_PARAM with Synapse's texts
 * when the string does not have that shape. It does not check the grammar of
 * either part: historical user ids on other servers may be anything.
 */
export function parseUserId(value: string): UserId {
  if (!value.startsWith("@")) {
    throw new MatrixError("M_INVALID_PARAM", "Expected UserID string to start with '@'");
  }
  const colon = value.indexOf(":");
  if (colon < 2 || colon === value.length - 1) {
    throw new MatrixError("M_INVALID_PARAM", "Expected UserID of the form '@localname:domain'");
  }
  return { localpart: value.slice(1, colon), domain: value.slice(colon + 1) };
}

/** `@localpart:serverName`. */
export function formatUserId(localpart: string, serverName: string): string {
  return `@${localpart}:${serverName}`;
}

/**
 * Checks a localpart for a new local account as Synapse's registration does;
 * throws 400 M_INVALID_USERNAME naming the rule that failed.
 */
export function assertValidNewLocalpart(localpart: string, serverName: string): void {
  if (localpart.length === 0) {
    throw new MatrixError("M_INVALID_USERNAME", "User ID cannot be empty");
  }
  if (!NEW_LOCALPART.test(localpart)) {
    throw new MatrixError(
      "M_INVALID_USERNAME",
      "User ID can only contain characters a-z, 0-9, or '=_-./+'",
    );
  }
  if (localpart.startsWith("_")) {
    throw new MatrixError("M_INVALID_USERNAME", "User ID may not begin with _");
  }
  if (formatUserId(localpart, serverName).length > MAX_USER_ID_LENGTH) {
    throw new MatrixError(
      "M_INVALID_USERNAME",
      `User ID may not be longer than ${MAX_USER_ID_LENGTH} characters`,
    );
  }
}

/**
 * Accepts either a bare localpart or a full user id (as login does) and
 * returns the full user id on this server. A full id on another server is
 * returned unchanged, so the caller's lookup fails the normal way.
 */
export function qualifyUserId(userOrLocalpart: string, serverName: string): string {
  if (userOrLocalpart.startsWith("@")) return userOrLocalpart;
  return formatUserId(userOrLocalpart.toLowerCase(), serverName);
}
