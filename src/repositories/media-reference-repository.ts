/**
 * The media-reference index: one row per `mxc://` reference by a stored event
 * or a profile. Rows are written in the transaction that stores the event
 * (or changes the profile) and removed in the one that redacts it.
 *
 * Each read is one index range scan (see migration 0003-rooms.ts):
 * - `roomMedia`: `media_references_room`, which covers every column it reads,
 *   so its cost grows with the room's references, never with the table;
 * - `usages`, `isReferenced`, `avatarReferenced`: `media_references_media`.
 */
import { sql } from "kysely";
import type { Database, Db } from "../db/database.js";
import type { ExtractedReference, ReferenceKind } from "../domain/media-reference-extractor.js";
import type { MxcUri } from "../identifiers/mxc-uri.js";

/** Where one reference lives: an event of a room, or a user's profile. */
export interface MediaUsage extends MxcUri {
  readonly kind: ReferenceKind;
  readonly roomId: string | null;
  readonly eventId: string | null;
  readonly streamOrdering: number | null;
  readonly userId: string | null;
}

/** The event whose references are being recorded. */
export interface ReferencingEvent {
  readonly roomId: string;
  readonly eventId: string;
  readonly streamOrdering: number;
}

/** The `media_references` table: writes inside the caller's transaction, indexed reads. */
export class MediaReferenceRepository {
  constructor(private readonly database: Database) {}

  /** Records an event's references (none is a no-op). */
  async insertForEvent(db: Db, event: ReferencingEvent, refs: readonly ExtractedReference[]) {
    if (refs.length === 0) return;
    await db
      .insertInto("media_references")
      .values(
        refs.map((r) => ({
          kind: r.kind,
          media_origin: r.origin,
          media_id: r.mediaId,
          room_id: event.roomId,
          event_id: event.eventId,
          stream_ordering: event.streamOrdering,
          user_id: null,
        })),
      )
      .execute();
  }

  /** Removes an event's references (found by its room and stream ordering) and returns them. */
  async removeForEvent(db: Db, roomId: string, streamOrdering: number): Promise<MxcUri[]> {
    const rows = await db
      .deleteFrom("media_references")
      .where("room_id", "=", roomId)
      .where("stream_ordering", "=", streamOrdering)
      .returning(["media_origin", "media_id"])
      .execute();
    return rows.map((r) => ({ origin: r.media_origin, mediaId: r.media_id }));
  }

  /**
   * Every distinct media a room references, newest reference first; within one
   * event the main URL before its thumbnail. The sort key of a reference is
   * stream_ordering * 2 + (1 for a main URL, 0 for a thumbnail).
   */
  async roomMedia(roomId: string): Promise<MxcUri[]> {
    const rows = await this.database.db
      .selectFrom("media_references")
      .select([
        "media_origin",
        "media_id",
        sql<number>`max(stream_ordering * 2 + case when kind = 'thumbnail' then 0 else 1 end)`.as(
          "position",
        ),
      ])
      .where("room_id", "=", roomId)
      .groupBy(["media_origin", "media_id"])
      .orderBy("position", "desc")
      .orderBy("media_origin")
      .orderBy("media_id")
      .execute();
    return rows.map((r) => ({ origin: r.media_origin, mediaId: r.media_id }));
  }

  /** Where a media item is referenced: events (newest first), then profiles; at most `limit`. */
  async usages(origin: string, mediaId: string, limit = 1000): Promise<MediaUsage[]> {
    const rows = await this.database.db
      .selectFrom("media_references")
      .select(["kind", "media_origin", "media_id", "room_id", "event_id", "stream_ordering"])
      .select("user_id")
      .where("media_origin", "=", origin)
      .where("media_id", "=", mediaId)
      .orderBy("stream_ordering", (ob) => ob.desc().nullsLast())
      .orderBy("id")
      .limit(limit)
      .execute();
    return rows.map((r) => ({
      kind: r.kind as ReferenceKind,
      origin: r.media_origin,
      mediaId: r.media_id,
      roomId: r.room_id,
      eventId: r.event_id,
      streamOrdering: r.stream_ordering === null ? null : Number(r.stream_ordering),
      userId: r.user_id,
    }));
  }

  /** True while any event or profile references the media. */
  async isReferenced(origin: string, mediaId: string, db: Db = this.database.db) {
    const row = await db
      .selectFrom("media_references")
      .select("id")
      .where("media_origin", "=", origin)
      .where("media_id", "=", mediaId)
      .limit(1)
      .executeTakeFirst();
    return row !== undefined;
  }

  /**
   * Which of `mediaIds` (all of `origin`) are a profile avatar, a member
   * avatar in any stored membership event, or the current avatar of a room:
   * the media `POST /media/delete` keeps when `keep_profiles` is true (A13).
   */
  async avatarReferenced(origin: string, mediaIds: readonly string[]): Promise<Set<string>> {
    if (mediaIds.length === 0) return new Set();
    const rows = await this.database.db
      .selectFrom("media_references as r")
      .select("r.media_id")
      .distinct()
      .where("r.media_origin", "=", origin)
      .where("r.media_id", "in", mediaIds)
      .where((eb) =>
        eb.or([
          eb("r.kind", "in", ["profile_avatar", "member_avatar"]),
          eb.and([
            eb("r.kind", "=", "room_avatar"),
            eb.exists(
              eb
                .selectFrom("current_state as cs")
                .select("cs.event_id")
                .whereRef("cs.room_id", "=", "r.room_id")
                .where("cs.type", "=", "m.room.avatar")
                .where("cs.state_key", "=", "")
                .whereRef("cs.event_id", "=", "r.event_id"),
            ),
          ]),
        ]),
      )
      .execute();
    return new Set(rows.map((r) => r.media_id));
  }

  /** Replaces a user's profile-avatar reference (see `replaceProfileAvatarReference`). */
  replaceProfileAvatar(db: Db, userId: string, avatarUrl: MxcUri | undefined): Promise<void> {
    return replaceProfileAvatarReference(db, userId, avatarUrl);
  }
}

/**
 * Points a user's profile-avatar reference at `avatarUrl` (undefined: none).
 * A standalone function so UserRepository can call it inside the transaction
 * that changes the profile.
 */
export async function replaceProfileAvatarReference(
  db: Db,
  userId: string,
  avatarUrl: MxcUri | undefined,
): Promise<void> {
  await db
    .deleteFrom("media_references")
    .where("user_id", "=", userId)
    .where("kind", "=", "profile_avatar")
    .execute();
  if (!avatarUrl) return;
  await db
    .insertInto("media_references")
    .values({
      kind: "profile_avatar",
      media_origin: avatarUrl.origin,
      media_id: avatarUrl.mediaId,
      room_id: null,
      event_id: null,
      stream_ordering: null,
      user_id: userId,
    })
    .execute();
}
