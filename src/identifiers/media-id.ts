/**
 * Media ids and `mxc://<server-name>/<media-id>` addresses (Matrix spec,
 * content repository; matrix-media-spec.md §3). Every server name and media id
 * taken from a request passes `parseMediaAddress` before any other use, so a
 * malformed one is a 400 M_INVALID_PARAM and never reaches storage.
 */
import { randomInt } from "node:crypto";
import { MatrixError } from "../domain/matrix-error.js";
import { isValidServerName } from "./server-name.js";

/** The URL-safe base64 alphabet the spec allows in media ids (v1.17, v1.19). */
const MEDIA_ID = /^[A-Za-z0-9_-]{1,255}$/;

/** The alphabet of generated ids: Synapse uses 24 random ASCII letters. */
const LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const NEW_MEDIA_ID_LENGTH = 24;

/** A validated media address: the two halves of an `mxc://` URI. */
export interface MediaAddress {
  readonly serverName: string;
  readonly mediaId: string;
}

/** True when `id` is 1–255 characters from `A-Z a-z 0-9 _ -`. */
export function isValidMediaId(id: string): boolean {
  return MEDIA_ID.test(id);
}

/**
 * Validates a server name and media id from a request and returns them as a
 * MediaAddress. Throws 400 M_INVALID_PARAM when either is malformed.
 *
 * Beyond the server-name grammar, `.` and `..` are refused: the grammar's DNS
 * form allows them, but they name no host and, as the `<origin>` directory of
 * remote media, they would be path traversal.
 */
export function parseMediaAddress(serverName: string, mediaId: string): MediaAddress {
  if (!isValidServerName(serverName) || serverName === "." || serverName === "..") {
    throw new MatrixError("M_INVALID_PARAM", "Invalid server name");
  }
  if (!isValidMediaId(mediaId)) {
    throw new MatrixError("M_INVALID_PARAM", "Invalid media ID");
  }
  return { serverName, mediaId };
}

/** A fresh local media id: 24 letters `[A-Za-z]` from the cryptographic RNG (as Synapse). */
export function newMediaId(): string {
  let id = "";
  for (let i = 0; i < NEW_MEDIA_ID_LENGTH; i++) id += LETTERS[randomInt(LETTERS.length)];
  return id;
}
