/**
 * Rooms as the services and the admin API see them, and the admin room
 * list's query (Synapse's `GET /_synapse/admin/v1/rooms` parameters). Below
 * every layer, so routes name these without importing a repository.
 */

/** A room: its creation facts and the statistics kept current by the event writer. */
export interface Room {
  readonly roomId: string;
  readonly roomVersion: string;
  readonly creator: string;
  readonly isPublic: boolean;
  readonly createdTs: number;
  readonly name: string | null;
  readonly topic: string | null;
  readonly avatar: string | null;
  readonly canonicalAlias: string | null;
  readonly encryption: string | null;
  readonly joinRules: string | null;
  readonly guestAccess: string | null;
  readonly historyVisibility: string | null;
  readonly federatable: boolean;
  readonly roomType: string | null;
  readonly joinedMembers: number;
  readonly joinedLocalMembers: number;
  readonly stateEvents: number;
}

/** A room about to be created (its stats start empty and fill in as state arrives). */
export type NewRoom = Pick<Room, "roomId" | "roomVersion" | "creator" | "isPublic" | "createdTs">;

/** Synapse's `order_by` values for the admin room list, in its declaration (and error message) order. */
export const ROOM_ORDER_BY = [
  "alphabetical",
  "size",
  "name",
  "canonical_alias",
  "joined_members",
  "joined_local_members",
  "version",
  "creator",
  "encryption",
  "federatable",
  "public",
  "join_rules",
  "guest_access",
  "history_visibility",
  "state_events",
] as const;

/** One of Synapse's room list orders. */
export type RoomOrderBy = (typeof ROOM_ORDER_BY)[number];

/** The admin room list's parameters (Synapse's names, parsed). */
export interface RoomListQuery {
  readonly from: number;
  readonly limit: number;
  readonly orderBy: RoomOrderBy;
  /** `b` reverses the natural order. */
  readonly direction: "f" | "b";
  /** Substring of the name or canonical alias localpart (case-insensitive), or the exact room id. */
  readonly searchTerm?: string;
  readonly publicRooms?: boolean;
  readonly emptyRooms?: boolean;
}
