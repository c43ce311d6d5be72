/**
 * Rooms and their statistics (one row per room, kept current by the event
 * writer in the transaction that stores each state event), and the admin
 * room list with Synapse's ordering, filtering and offset paging.
 */
import { type Selectable, sql } from "kysely";
import type { Database, Db } from "../db/database.js";
import type { RoomsTable } from "../db/schema.js";
import type { NewRoom, Room, RoomListQuery, RoomOrderBy } from "../domain/room.js";
import type { RoomStateStats } from "../domain/room-stats.js";

/** Counter changes that go with one state event. */
export interface RoomCounterDeltas {
  joinedMembers?: number;
  joinedLocalMembers?: number;
  stateEvents?: number;
}

/**
 * Each of Synapse's room list orders with its column and natural direction
 * (Synapse: counts and versions largest first, everything else ascending).
 */
const ORDER: { readonly [K in RoomOrderBy]: readonly [column: string, ascending: boolean] } = {
  alphabetical: ["name", true],
  size: ["joined_members", false],
  name: ["name", true],
  canonical_alias: ["canonical_alias", true],
  joined_members: ["joined_members", false],
  joined_local_members: ["joined_local_members", false],
  version: ["room_version", false],
  creator: ["creator", true],
  encryption: ["encryption", true],
  federatable: ["federatable", true],
  public: ["is_public", true],
  join_rules: ["join_rules", true],
  guest_access: ["guest_access", true],
  history_visibility: ["history_visibility", true],
  state_events: ["state_events", false],
};

/** The `rooms` table. */
export class RoomRepository {
  constructor(private readonly database: Database) {}

  async insert(db: Db, room: NewRoom): Promise<void> {
    await db
      .insertInto("rooms")
      .values({
        room_id: room.roomId,
        room_version: room.roomVersion,
        creator: room.creator,
        is_public: room.isPublic,
        created_ts: room.createdTs,
        federatable: true,
        joined_members: 0,
        joined_local_members: 0,
        state_events: 0,
      })
      .execute();
  }

  async get(roomId: string): Promise<Room | undefined> {
    const row = await this.database.db
      .selectFrom("rooms")
      .selectAll()
      .where("room_id", "=", roomId)
      .executeTakeFirst();
    return row && toRoom(row);
  }

  /** Applies new state-derived columns and counter deltas to a room. */
  async update(db: Db, roomId: string, stats: RoomStateStats, deltas: RoomCounterDeltas) {
    const { joinedMembers = 0, joinedLocalMembers = 0, stateEvents = 0 } = deltas;
    if (Object.keys(stats).length === 0 && !joinedMembers && !joinedLocalMembers && !stateEvents) {
      return;
    }
    await db
      .updateTable("rooms")
      .set((eb) => ({
        ...stats,
        joined_members: eb("joined_members", "+", joinedMembers),
        joined_local_members: eb("joined_local_members", "+", joinedLocalMembers),
        state_events: eb("state_events", "+", stateEvents),
      }))
      .where("room_id", "=", roomId)
      .execute();
  }

  /** A page of rooms and the number matching the filters (Synapse's offset paging). */
  async list(query: RoomListQuery): Promise<{ rooms: Room[]; total: number }> {
    const filtered = this.database.db.selectFrom("rooms").where((eb) => {
      const conditions = [];
      if (query.searchTerm !== undefined) {
        const term = query.searchTerm.toLowerCase().replace(/[\\%_]/g, (c) => `\\${c}`);
        conditions.push(
          eb.or([
            sql<boolean>`lower(name) like ${`%${term}%`} escape '\\'`,
            sql<boolean>`lower(canonical_alias) like ${`#%${term}%:%`} escape '\\'`,
            eb("room_id", "=", query.searchTerm),
          ]),
        );
      }
      if (query.publicRooms !== undefined) conditions.push(eb("is_public", "=", query.publicRooms));
      if (query.emptyRooms !== undefined) {
        conditions.push(eb("joined_members", query.emptyRooms ? "=" : ">", 0));
      }
      return eb.and(conditions);
    });
    const { total } = await filtered
      .select((eb) => eb.fn.countAll<number>().as("total"))
      .executeTakeFirstOrThrow();
    const [column, naturalAscending] = ORDER[query.orderBy];
    const ascending = query.direction === "b" ? !naturalAscending : naturalAscending;
    const rows = await filtered
      .selectAll()
      .orderBy(sql.ref(column), (ob) => (ascending ? ob.asc().nullsLast() : ob.desc().nullsFirst()))
      .orderBy("room_id", ascending ? "asc" : "desc")
      .limit(query.limit)
      .offset(query.from)
      .execute();
    return { rooms: rows.map(toRoom), total: Number(total) };
  }

  /** Distinct devices (access tokens with a device id) of the room's joined members. */
  async countJoinedDevices(roomId: string): Promise<number> {
    const devices = this.database.db
      .selectFrom("access_tokens")
      .select(["user_id", "device_id"])
      .distinct()
      .where("device_id", "is not", null)
      .where("user_id", "in", (eb) =>
        eb
          .selectFrom("current_state")
          .select("state_key")
          .where("room_id", "=", roomId)
          .where("type", "=", "m.room.member")
          .where("membership", "=", "join"),
      );
    const row = await this.database.db
      .selectFrom(devices.as("devices"))
      .select((eb) => eb.fn.countAll<number>().as("count"))
      .executeTakeFirstOrThrow();
    return Number(row.count);
  }
}

type RoomRow = Selectable<RoomsTable>;

function toRoom(row: RoomRow): Room {
  return {
    roomId: row.room_id,
    roomVersion: row.room_version,
    creator: row.creator,
    isPublic: Boolean(row.is_public),
    createdTs: Number(row.created_ts),
    name: row.name,
    topic: row.topic,
    avatar: row.avatar,
    canonicalAlias: row.canonical_alias,
    encryption: row.encryption,
    joinRules: row.join_rules,
    guestAccess: row.guest_access,
    historyVisibility: row.history_visibility,
    federatable: Boolean(row.federatable),
    roomType: row.room_type,
    joinedMembers: Number(row.joined_members),
    joinedLocalMembers: Number(row.joined_local_members),
    stateEvents: Number(row.state_events),
  };
}
