/**
 * The `POST /createRoom` body (client-server API "Creation"), validated into
 * a typed request. Wrong shapes are 400 M_BAD_JSON; malformed invitee ids
 * 400 M_INVALID_PARAM. `room_alias_name` is ignored: mxcd has no aliases.
 */
import { MatrixError } from "../domain/matrix-error.js";
import type { JsonObject } from "../domain/room-event.js";
import { parseUserId } from "../identifiers/user-id.js";

/** The spec's room presets; `trusted_private_chat` also gives invitees power 100. */
export type RoomPreset = "private_chat" | "public_chat" | "trusted_private_chat";

/** The one room version mxcd creates. */
export const ROOM_VERSION = "10";

/** One `initial_state` entry. */
export interface InitialStateEvent {
  readonly type: string;
  readonly stateKey: string;
  readonly content: JsonObject;
}

/** A validated createRoom body, defaults applied. */
export interface CreateRoomRequest {
  readonly name?: string;
  readonly topic?: string;
  readonly preset: RoomPreset;
  readonly visibility: "public" | "private";
  readonly initialState: readonly InitialStateEvent[];
  readonly invite: readonly string[];
  readonly isDirect: boolean;
  readonly creationContent: JsonObject;
  readonly powerLevelOverride: JsonObject;
}

const PRESETS: readonly RoomPreset[] = ["private_chat", "public_chat", "trusted_private_chat"];

function isObject(value: unknown): value is JsonObject {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function optional<T>(body: JsonObject, key: string, check: (v: unknown) => v is T): T | undefined {
  const value = body[key];
  if (value === undefined) return undefined;
  if (!check(value)) throw new MatrixError("M_BAD_JSON", `Invalid '${key}'`);
  return value;
}

const isString = (v: unknown): v is string => typeof v === "string";
const isArray = (v: unknown): v is unknown[] => Array.isArray(v);

/** Validates a createRoom body; the spec's defaults fill what it omits. */
export function parseCreateRoomRequest(body: JsonObject): CreateRoomRequest {
  const visibility = optional(body, "visibility", isString) ?? "private";
  if (visibility !== "public" && visibility !== "private") {
    throw new MatrixError("M_BAD_JSON", "'visibility' must be 'public' or 'private'");
  }
  const preset =
    optional(body, "preset", isString) ??
    (visibility === "public" ? "public_chat" : "private_chat");
  if (!(PRESETS as readonly string[]).includes(preset)) {
    throw new MatrixError("M_BAD_JSON", `'${preset}' is not a valid preset`);
  }
  const version = optional(body, "room_version", isString);
  if (version !== undefined && version !== ROOM_VERSION) {
    throw new MatrixError("M_INVALID_PARAM", `Room version ${version} is not supported`);
  }
  return {
    name: optional(body, "name", isString),
    topic: optional(body, "topic", isString),
    preset: preset as RoomPreset,
    visibility,
    initialState: (optional(body, "initial_state", isArray) ?? []).map(initialStateEvent),
    invite: inviteList(optional(body, "invite", isArray) ?? []),
    isDirect: optional(body, "is_direct", (v): v is boolean => typeof v === "boolean") ?? false,
    creationContent: optional(body, "creation_content", isObject) ?? {},
    powerLevelOverride: optional(body, "power_level_content_override", isObject) ?? {},
  };
}

function initialStateEvent(entry: unknown): InitialStateEvent {
  if (!isObject(entry) || typeof entry.type !== "string" || !isObject(entry.content)) {
    throw new MatrixError("M_BAD_JSON", "initial_state entries need a 'type' and a 'content'");
  }
  const stateKey = entry.state_key ?? "";
  if (typeof stateKey !== "string") throw new MatrixError("M_BAD_JSON", "Invalid 'state_key'");
  return { type: entry.type, stateKey, content: entry.content };
}

function inviteList(entries: unknown[]): string[] {
  const invite: string[] = [];
  for (const entry of entries) {
    if (typeof entry !== "string") throw new MatrixError("M_BAD_JSON", "Invalid 'invite'");
    parseUserId(entry);
    if (!invite.includes(entry)) invite.push(entry);
  }
  return invite;
}
