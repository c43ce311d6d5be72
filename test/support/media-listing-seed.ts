/**
 * Seeds and models for the server-wide media listing tests
 * (test/mxcd-media-list*.test.ts, test/mxcd-media-summary.test.ts): media
 * rows written straight to the tables, and the order and filters the API
 * promises written again in plain JavaScript, so a test compares the API
 * with an independent model.
 */
import type { Database } from "../../src/db/database.js";

/** One seeded media row, local (`origin` null) or cached remote. */
export interface SeededMedia {
  readonly origin: string | null;
  readonly mediaId: string;
  readonly ts: number;
  readonly userId: string | null;
  readonly type: string;
  readonly length: number | null;
  readonly quarantined: boolean;
  readonly protected: boolean;
}

export const TYPES = ["image/png", "image/jpeg", "video/mp4", "text/plain"] as const;
export const ROOM = "!console:test.local";

/** Writes `media` to the two media tables. */
export async function seedMedia(database: Database, media: readonly SeededMedia[]): Promise<void> {
  const row = (m: SeededMedia) => ({
    media_id: m.mediaId,
    media_type: m.type,
    media_length: m.length,
    created_ts: m.ts,
    upload_name: `${m.mediaId}.bin`,
    quarantined_by: m.quarantined ? "@admin:test.local" : null,
    authenticated: false,
    sha256: null,
  });
  const local = media.filter((m) => m.origin === null);
  const remote = media.filter((m) => m.origin !== null);
  // In chunks: SQLite bounds the parameters of one statement.
  for (let i = 0; i < local.length; i += 50) {
    const values = local.slice(i, i + 50).map((m) => ({
      ...row(m),
      user_id: m.userId,
      last_access_ts: null,
      safe_from_quarantine: m.protected,
    }));
    await database.db.insertInto("local_media_repository").values(values).execute();
  }
  for (let i = 0; i < remote.length; i += 50) {
    const values = remote.slice(i, i + 50).map((m) => ({
      ...row(m),
      media_origin: m.origin as string,
      filesystem_id: `fs${m.mediaId}`,
      last_access_ts: m.ts,
    }));
    await database.db.insertInto("remote_media_cache").values(values).execute();
  }
}

/** A reference from an event of `roomId` to a media item. */
export async function seedReference(
  database: Database,
  ref: { roomId: string; eventId: string; origin: string; mediaId: string; stream: number },
): Promise<void> {
  await database.db
    .insertInto("media_references")
    .values({
      kind: "url",
      media_origin: ref.origin,
      media_id: ref.mediaId,
      room_id: ref.roomId,
      event_id: ref.eventId,
      stream_ordering: ref.stream,
      user_id: null,
    })
    .execute();
}

/**
 * A mixed data set: `local` local and `remote` remote rows over few distinct
 * timestamps (so many ties, across the two tables too), two users, two
 * remote origins, the four TYPES, some quarantined, some protected, one
 * local row with no length yet (a pending upload).
 */
export function mixedMedia(local: number, remote: number): SeededMedia[] {
  const out: SeededMedia[] = [];
  for (let i = 0; i < local; i++) {
    out.push({
      origin: null,
      mediaId: `L${String(i).padStart(4, "0")}`,
      ts: 1_000_000 + (i % 9) * 1000,
      userId: i % 3 === 0 ? "@alice:test.local" : "@bob:test.local",
      type: TYPES[i % TYPES.length] as string,
      length: i === 5 ? null : 100 + i,
      quarantined: i % 5 === 1,
      protected: i % 7 === 2,
    });
  }
  for (let i = 0; i < remote; i++) {
    out.push({
      origin: i % 2 === 0 ? "a.example" : "z.example",
      mediaId: `R${String(i).padStart(4, "0")}`,
      ts: 1_000_000 + (i % 9) * 1000,
      userId: null,
      type: TYPES[(i + 1) % TYPES.length] as string,
      length: 1000 + i,
      quarantined: i % 4 === 3,
      protected: false,
    });
  }
  return out;
}

/**
 * The listing's order: created_ts, then local before remote, then origin,
 * then media_id, all descending (ids and origins here are plain ASCII
 * letters and digits, which every collation orders alike).
 */
export function listingOrder(a: SeededMedia, b: SeededMedia): number {
  if (a.ts !== b.ts) return b.ts - a.ts;
  if ((a.origin === null) !== (b.origin === null)) return a.origin === null ? -1 : 1;
  if (a.origin !== b.origin) return (a.origin ?? "") < (b.origin ?? "") ? 1 : -1;
  return a.mediaId < b.mediaId ? 1 : a.mediaId > b.mediaId ? -1 : 0;
}

/** A listing row's key as `origin/media_id`. */
export function keyOf(m: { origin: string | null; mediaId: string }, serverName: string): string {
  return `${m.origin ?? serverName}/${m.mediaId}`;
}
