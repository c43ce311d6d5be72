/**
 * Rooms, events, current state, send-transaction ids and the media-reference
 * index (DESIGN.md difference 6: room media comes from an index maintained
 * when events are stored, never from re-parsing room history).
 *
 * Index plan, each serving one query as a single index range scan:
 * - `events_room_stream` (room_id, stream_ordering): `/messages` keyset pages.
 * - `current_state_member` (state_key, type): a user's rooms (`/joined_rooms`).
 * - `media_references_room` (room_id, stream_ordering, media_origin, media_id,
 *   kind): the admin room media list; it covers every column the query reads,
 *   so the cost depends on the room's own references, never on the table size.
 * - `media_references_media` (media_origin, media_id): "where is this media
 *   used" and "is it referenced anywhere".
 * - `media_references_profile` (user_id), partial: replacing a profile avatar.
 */
import type { Kysely } from "kysely";
import type { MigrationContext } from "./migration.js";

/** Creates the room, event and media-reference tables with their indexes. */
export async function up(db: Kysely<unknown>, context: MigrationContext): Promise<void> {
  await createRooms(db, context);
  await createEvents(db, context);
  await createMediaReferences(db, context);
}

async function createRooms(db: Kysely<unknown>, { flag }: MigrationContext): Promise<void> {
  // One row per room: fixed facts plus the statistics the admin room list
  // sorts and filters on (Synapse splits these over rooms, room_stats_state
  // and room_stats_current), kept current in the transaction storing each event.
  await db.schema
    .createTable("rooms")
    .addColumn("room_id", "text", (c) => c.primaryKey())
    .addColumn("room_version", "text", (c) => c.notNull())
    .addColumn("creator", "text", (c) => c.notNull())
    .addColumn("is_public", flag, (c) => c.notNull().defaultTo(false))
    .addColumn("created_ts", "bigint", (c) => c.notNull())
    .addColumn("name", "text")
    .addColumn("topic", "text")
    .addColumn("avatar", "text")
    .addColumn("canonical_alias", "text")
    .addColumn("encryption", "text")
    .addColumn("join_rules", "text")
    .addColumn("guest_access", "text")
    .addColumn("history_visibility", "text")
    .addColumn("federatable", flag, (c) => c.notNull().defaultTo(true))
    .addColumn("room_type", "text")
    .addColumn("joined_members", "integer", (c) => c.notNull().defaultTo(0))
    .addColumn("joined_local_members", "integer", (c) => c.notNull().defaultTo(0))
    .addColumn("state_events", "integer", (c) => c.notNull().defaultTo(0))
    .execute();
}

async function createEvents(db: Kysely<unknown>, { flag, autoId }: MigrationContext) {
  await db.schema
    .createTable("events")
    .addColumn("stream_ordering", "integer", autoId)
    .addColumn("event_id", "text", (c) => c.notNull().unique())
    .addColumn("room_id", "text", (c) => c.notNull())
    .addColumn("type", "text", (c) => c.notNull())
    .addColumn("state_key", "text")
    .addColumn("sender", "text", (c) => c.notNull())
    .addColumn("content", "text", (c) => c.notNull())
    .addColumn("origin_server_ts", "bigint", (c) => c.notNull())
    .addColumn("redacts", "text")
    .addColumn("redacted", flag, (c) => c.notNull().defaultTo(false))
    .addColumn("redacted_by", "text")
    .execute();
  await db.schema
    .createIndex("events_room_stream")
    .on("events")
    .columns(["room_id", "stream_ordering"])
    .execute();

  await db.schema
    .createTable("current_state")
    .addColumn("room_id", "text", (c) => c.notNull())
    .addColumn("type", "text", (c) => c.notNull())
    .addColumn("state_key", "text", (c) => c.notNull())
    .addColumn("event_id", "text", (c) => c.notNull())
    .addColumn("membership", "text")
    .addPrimaryKeyConstraint("current_state_pk", ["room_id", "type", "state_key"])
    .execute();
  await db.schema
    .createIndex("current_state_member")
    .on("current_state")
    .columns(["state_key", "type"])
    .execute();

  await db.schema
    .createTable("event_transactions")
    .addColumn("token_hash", "text", (c) => c.notNull())
    .addColumn("scope", "text", (c) => c.notNull())
    .addColumn("txn_id", "text", (c) => c.notNull())
    .addColumn("event_id", "text", (c) => c.notNull())
    .addColumn("created_ts", "bigint", (c) => c.notNull())
    .addPrimaryKeyConstraint("event_transactions_pk", ["token_hash", "scope", "txn_id"])
    .execute();
}

async function createMediaReferences(db: Kysely<unknown>, { autoId }: MigrationContext) {
  await db.schema
    .createTable("media_references")
    .addColumn("id", "integer", autoId)
    .addColumn("kind", "text", (c) => c.notNull())
    .addColumn("media_origin", "text", (c) => c.notNull())
    .addColumn("media_id", "text", (c) => c.notNull())
    .addColumn("room_id", "text")
    .addColumn("event_id", "text")
    // bigint so the sort key stream_ordering * 2 + slot cannot overflow on PostgreSQL.
    .addColumn("stream_ordering", "bigint")
    .addColumn("user_id", "text")
    .execute();
  await db.schema
    .createIndex("media_references_room")
    .on("media_references")
    .columns(["room_id", "stream_ordering", "media_origin", "media_id", "kind"])
    .execute();
  await db.schema
    .createIndex("media_references_media")
    .on("media_references")
    .columns(["media_origin", "media_id"])
    .execute();
  await db.schema
    .createIndex("media_references_profile")
    .on("media_references")
    .column("user_id")
    .where("user_id", "is not", null)
    .execute();
}
