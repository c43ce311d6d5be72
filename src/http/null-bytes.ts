/**
 * NUL (U+0000) in request input. PostgreSQL's `text` and `jsonb` cannot hold
 * it: a user id, room id, search term or room name carrying one made the
 * statement fail, and the request answered 500 (the hostile pass of the
 * sixth session found it on a dozen routes; SQLite stored it instead, so
 * the engines disagreed too). No Matrix identifier, filter or token
 * contains it, so:
 *
 * - a request URL with a percent-encoded NUL (`%00`, in the path or the
 *   query, except in an `access_token` value) is refused up front, on both
 *   engines, with 400 M_INVALID_PARAM;
 * - a NUL that reaches PostgreSQL another way (a JSON body's string stored
 *   in a text column) fails its statement with SQLSTATE 22021
 *   (`character_not_in_repertoire`, "invalid byte sequence … 0x00") or
 *   22P05 (`untranslatable_character`, jsonb's "\u0000 cannot be
 *   converted"); that error is answered 400 M_INVALID_PARAM, not 500. The
 *   statement's transaction is rolled back, so nothing is half-written.
 */
import { MatrixError } from "../domain/matrix-error.js";

/** The answer to input carrying NUL. */
export function nullByteError(): MatrixError {
  return new MatrixError("M_INVALID_PARAM", "Null bytes (U+0000) are not allowed");
}

/** `access_token=<value>` in a query string, the value up to the next `&`. */
const ACCESS_TOKEN_PARAM = /([?&]access_token=)[^&]*/g;

/**
 * Whether a raw request URL (path and query, still percent-encoded) encodes
 * a NUL outside an `access_token` query value. A token is authentication's
 * to judge: one with a NUL is an unknown token (401 M_UNKNOWN_TOKEN, as for
 * any other control character, and as Synapse answers), never looked up as
 * text (tokens are looked up by their hash; the attached shape refuses
 * control characters before asking the homeserver).
 */
export function urlHasNullByte(url: string): boolean {
  if (!url.includes("%00")) return false;
  return url.replace(ACCESS_TOKEN_PARAM, "$1").includes("%00");
}

/** Whether `error` is PostgreSQL refusing a NUL in a text or jsonb value. */
export function isNullByteStorageError(error: unknown): boolean {
  if (typeof error !== "object" || error === null) return false;
  const { code, message } = error as { code?: unknown; message?: unknown };
  if (typeof message !== "string") return false;
  if (code === "22021") return message.includes("0x00");
  if (code === "22P05") return message.includes("\\u0000");
  return false;
}
