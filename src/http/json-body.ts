/**
 * Reading fields of a JSON request body with Matrix errors for wrong shapes.
 * Every body read here is first checked for hostile nesting (json-depth.ts),
 * before any route or service walks it.
 */
import { assertJsonDepth } from "../domain/json-depth.js";
import { MatrixError } from "../domain/matrix-error.js";

export type JsonObject = Record<string, unknown>;

/**
 * The body as an object; absent → `{}`; nested deeper than `MAX_JSON_DEPTH`
 * → 400 M_BAD_JSON; anything else that is not an object → 400 M_NOT_JSON.
 */
export function jsonObject(body: unknown): JsonObject {
  if (body === undefined || body === null) return {};
  assertJsonDepth(body, "Request body");
  if (typeof body !== "object" || Array.isArray(body)) {
    throw new MatrixError("M_NOT_JSON", "Content must be a JSON object.");
  }
  return body as JsonObject;
}

/** An optional field of a given JSON type, or 400 M_BAD_JSON / M_INVALID_PARAM. */
export function optionalField<T extends "string" | "boolean" | "number">(
  body: JsonObject,
  name: string,
  type: T,
  errcode: "M_BAD_JSON" | "M_INVALID_PARAM" = "M_BAD_JSON",
): (T extends "string" ? string : T extends "boolean" ? boolean : number) | undefined {
  const value = body[name];
  if (value === undefined) return undefined;
  if (typeof value !== type) {
    throw new MatrixError(errcode, `'${name}' must be a ${type}`);
  }
  return value as never;
}
