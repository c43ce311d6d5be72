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
 * - a JSON body holding NUL in any string or key is refused by the body
 *   parser, on both engines and before any route runs, with 400 M_BAD_JSON
 *   (valid JSON, invalid value: the spec's meaning of the code). Before,
 *   SQLite stored such a display name or room name and PostgreSQL refused
 *   it. Only the application-service transactions accept NUL
 *   (`NULL_BYTES_IN_BODY`): their events were written by others, a refused
 *   transaction is retried by the homeserver forever, and the receiver
 *   stores only NUL-free ids and JSON-encoded (escaped) content;
 * - a NUL that still reaches PostgreSQL another way fails its statement
 *   with SQLSTATE 22021 (`character_not_in_repertoire`, "invalid byte
 *   sequence … 0x00") or 22P05 (`untranslatable_character`, jsonb's
 *   "\u0000 cannot be converted"); that error is answered 400
 *   M_INVALID_PARAM, not 500. The statement's transaction is rolled back, so
 *   nothing is half-written.
 *
 * Headers and raw URLs cannot carry a bare NUL: Node's HTTP parser refuses
 * the request (400) before mxcd sees it.
 */
import { MatrixError } from "../domain/matrix-error.js";

declare module "fastify" {
  interface FastifyContextConfig {
    /** `"allowed"`: this route's JSON body may hold NUL (see `NULL_BYTES_IN_BODY`). */
    nullBytesInBody?: "allowed";
  }
}

/**
 * Route `config` of the one kind of route whose JSON body may hold NUL: the
 * homeserver's application-service transactions (module comment).
 */
export const NULL_BYTES_IN_BODY = { nullBytesInBody: "allowed" } as const;

/** The answer to input carrying NUL. */
export function nullByteError(): MatrixError {
  return new MatrixError("M_INVALID_PARAM", "Null bytes (U+0000) are not allowed");
}

/** The answer to a JSON body holding NUL. */
export function nullByteBodyError(): MatrixError {
  return new MatrixError("M_BAD_JSON", "Null bytes (U+0000) are not allowed in JSON strings");
}

/**
 * Whether the parsed JSON body `value` holds NUL in a string value or an
 * object key. `text` is the body it was parsed from: JSON can only spell NUL
 * as the escape `\u0000` (a bare control character is a syntax error), so a
 * body without that text is answered without walking the value. The walk is
 * iterative, and the body's depth is already bounded by the parser.
 */
export function jsonHasNullByte(text: string, value: unknown): boolean {
  if (!text.includes("\\u0000")) return false;
  const pending: unknown[] = [value];
  while (pending.length > 0) {
    const current = pending.pop();
    if (typeof current === "string") {
      if (current.includes("\0")) return true;
    } else if (Array.isArray(current)) {
      // One by one: spreading a huge array into push() overflows the stack.
      for (const item of current) pending.push(item);
    } else if (typeof current === "object" && current !== null) {
      for (const [key, child] of Object.entries(current)) {
        if (key.includes("\0")) return true;
        pending.push(child);
      }
    }
  }
  return false;
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
