/**
 * The SQL of media retention (docs/media.md "Retention"): which media a
 * retention rule selects, which of those an avatar keeps, and the re-check
 * of a marked item before it goes.
 *
 * Design notes:
 * - Each rule is a keyset walk over an indexed timestamp, then the unique
 *   key: `local_media_last_access`, `remote_media_last_access` (migration
 *   0002) and `local_media_created_id` (migration 0015), so a batch is one index
 *   range scan that starts where the last one ended, whatever the size of
 *   the table. The exemptions that are columns (quarantined, protected,
 *   pending, URL-cache) are filters on that scan.
 * - Avatars are read from the media-reference index (`media_references_media`)
 *   for one page at a time, never with a correlated sub-query per row of the
 *   table (Synapse's four-table check, synapse-media-admin.md §10).
 * - Every query takes a `Db`: the job passes its batch transaction, the
 *   dry run the plain connection.
 */
import type { Db } from "../db/database.js";
import { keysetPage } from "./keyset.js";

/** The rules, in the order a pass walks them (docs/media.md "Retention"). */
export const RETENTION_RULES = [
  "local_last_access",
  "local_never_accessed",
  "local_max_age",
  "remote_last_access",
] as const;
export type RetentionRule = (typeof RETENTION_RULES)[number];

/** A keyset position within one rule's walk. */
export interface RetentionCursor {
  readonly ts: number;
  readonly origin: string;
  readonly mediaId: string;
}

/** One media item a rule selected (JSON-serialisable: it is stored in the job's progress). */
export interface RetentionCandidate {
  readonly kind: "local" | "remote";
  /** Our server name for local media. */
  readonly origin: string;
  readonly mediaId: string;
  /** Remote media only: where its files live. */
  readonly filesystemId: string | null;
  /** Bytes of the original (0 when unknown). */
  readonly length: number;
  readonly rule: RetentionRule;
  /** The timestamp the rule compared: last access or creation. */
  readonly ts: number;
}

/** `media_length` of a local row being written now (media-repository.ts). */
const CLAIMED = -1;

export class MediaRetentionRepository {
  constructor(private readonly serverName: string) {}

  /**
   * The next page of `rule`'s candidates after `after`, their timestamp
   * before `cutoff`, ordered by it and the unique key. Never quarantined
   * media, protected local media, pending or streaming uploads, or URL-cache
   * media (the URL-preview expiry's; docs/previews.md "Expiry").
   */
  async candidates(
    db: Db,
    rule: RetentionRule,
    cutoff: number,
    after: RetentionCursor | null,
    limit: number,
  ): Promise<RetentionCandidate[]> {
    if (rule === "remote_last_access") return this.#remote(db, cutoff, after, limit);
    const ts = rule === "local_last_access" ? "last_access_ts" : "created_ts";
    const candidates = db
      .selectFrom("local_media_repository")
      .select((eb) => ["media_id", "media_length", eb.ref(ts).as("ts")])
      .where(ts, "<", cutoff)
      .$if(rule === "local_never_accessed", (q) => q.where("last_access_ts", "is", null))
      .where("media_length", "is not", null)
      .where("media_length", ">", CLAIMED)
      .where("url_cache", "is", null)
      .where("quarantined_by", "is", null)
      .where("safe_from_quarantine", "=", false);
    const rows = await keysetPage(
      candidates,
      [ts, "media_id"],
      after && [after.ts, after.mediaId],
      "asc",
    )
      .limit(limit)
      .execute();
    return rows.map((r) => ({
      kind: "local",
      origin: this.serverName,
      mediaId: r.media_id,
      filesystemId: null,
      length: Number(r.media_length ?? 0),
      rule,
      ts: Number(r.ts),
    }));
  }

  async #remote(
    db: Db,
    cutoff: number,
    after: RetentionCursor | null,
    limit: number,
  ): Promise<RetentionCandidate[]> {
    const candidates = db
      .selectFrom("remote_media_cache")
      .select(["media_origin", "media_id", "filesystem_id", "media_length", "last_access_ts"])
      .where("last_access_ts", "<", cutoff)
      .where("quarantined_by", "is", null);
    const rows = await keysetPage(
      candidates,
      ["last_access_ts", "media_origin", "media_id"],
      after && [after.ts, after.origin, after.mediaId],
      "asc",
    )
      .limit(limit)
      .execute();
    return rows.map((r) => ({
      kind: "remote",
      origin: r.media_origin,
      mediaId: r.media_id,
      filesystemId: r.filesystem_id,
      length: Number(r.media_length ?? 0),
      rule: "remote_last_access",
      ts: Number(r.last_access_ts),
    }));
  }

  /**
   * The `origin/mediaId` keys of `items` that are a current avatar: a
   * user's profile avatar; or a member or room avatar whose event is the
   * room's current state — or any member or room avatar of a room whose
   * state mxcd does not hold (attached mode sees events, not room state,
   * so it keeps every one it has seen).
   */
  async currentAvatars(db: Db, items: readonly RetentionCandidate[]): Promise<Set<string>> {
    const keys = new Set<string>();
    const byOrigin = new Map<string, string[]>();
    for (const item of items) {
      byOrigin.set(item.origin, [...(byOrigin.get(item.origin) ?? []), item.mediaId]);
    }
    for (const [origin, mediaIds] of byOrigin) {
      const rows = await db
        .selectFrom("media_references as r")
        .select("r.media_id")
        .distinct()
        .where("r.media_origin", "=", origin)
        .where("r.media_id", "in", mediaIds)
        .where((eb) =>
          eb.or([
            eb("r.kind", "=", "profile_avatar"),
            eb.and([
              eb("r.kind", "in", ["member_avatar", "room_avatar"]),
              eb.or([
                eb.exists(
                  eb
                    .selectFrom("current_state as cs")
                    .select("cs.event_id")
                    .whereRef("cs.room_id", "=", "r.room_id")
                    .whereRef("cs.event_id", "=", "r.event_id"),
                ),
                eb.not(
                  eb.exists(
                    eb
                      .selectFrom("current_state as known")
                      .select("known.event_id")
                      .whereRef("known.room_id", "=", "r.room_id"),
                  ),
                ),
              ]),
            ]),
          ]),
        )
        .execute();
      for (const row of rows) keys.add(`${origin}/${row.media_id}`);
    }
    return keys;
  }

  /**
   * The `origin/mediaId` keys of `items` that became exempt since they were
   * marked: quarantined, or (local) protected. Items whose row is gone are
   * not listed (their deletion finishes as a no-op).
   */
  async nowExempt(db: Db, items: readonly RetentionCandidate[]): Promise<Set<string>> {
    const keys = new Set<string>();
    const local = items.filter((i) => i.kind === "local").map((i) => i.mediaId);
    if (local.length > 0) {
      const rows = await db
        .selectFrom("local_media_repository")
        .select("media_id")
        .where("media_id", "in", local)
        .where((eb) =>
          eb.or([eb("quarantined_by", "is not", null), eb("safe_from_quarantine", "=", true)]),
        )
        .execute();
      for (const row of rows) keys.add(`${this.serverName}/${row.media_id}`);
    }
    for (const item of items.filter((i) => i.kind === "remote")) {
      const row = await db
        .selectFrom("remote_media_cache")
        .select("media_id")
        .where("media_origin", "=", item.origin)
        .where("media_id", "=", item.mediaId)
        .where("quarantined_by", "is not", null)
        .executeTakeFirst();
      if (row) keys.add(`${item.origin}/${item.mediaId}`);
    }
    return keys;
  }
}

/** The key `currentAvatars` and `nowExempt` use for an item. */
export function retentionKey(item: Pick<RetentionCandidate, "origin" | "mediaId">): string {
  return `${item.origin}/${item.mediaId}`;
}
