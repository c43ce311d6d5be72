/**
 * Local media metadata (`local_media_repository`) and local thumbnails.
 * The remote cache gets its own repository with federation.
 *
 * An async upload's row goes through three states: pending (`media_length`
 * NULL), claimed (`media_length` = -1 while one request streams the bytes)
 * and complete. The claim is a conditional UPDATE made under the id's upload
 * lock (UploadService), so of two concurrent uploads to one id, in one
 * process or several, exactly one proceeds, and a claim whose process died
 * (its lock gone with it) can be taken over.
 *
 * Writes that change what a cache may hold (a thumbnail recorded) publish a
 * MediaChanges after their commit (db/after-commit.ts; docs/deployment.md
 * "Caches"). New rows need none: unknown media is never cached, and neither
 * are pending or claimed rows, so completing a claim needs none either.
 */

import type { Selectable } from "kysely";
import type { MediaChanges } from "../cache/media-changes.js";
import { afterCommit } from "../db/after-commit.js";
import type { Database, Db } from "../db/database.js";
import type { RemoteMediaTable } from "../db/schema.js";
import { admissionPdqColumns, type MediaHashes } from "../domain/media-hashes.js";
import { CompiledSelect } from "./compiled-select.js";

/** `media_length` of a row whose bytes are being uploaded right now. */
const CLAIMED = -1;

export interface LocalMedia extends MediaHashes {
  readonly mediaId: string;
  readonly mediaType: string | null;
  /** Null while the content has not been uploaded (pending or being uploaded). */
  readonly mediaLength: number | null;
  readonly createdTs: number;
  readonly uploadName: string | null;
  readonly userId: string | null;
  readonly quarantinedBy: string | null;
  readonly urlCache: string | null;
  readonly lastAccessTs: number | null;
  readonly safeFromQuarantine: boolean;
  readonly authenticated: boolean;
  readonly sha256: string | null;
}

export interface RemoteMedia extends MediaHashes {
  readonly origin: string;
  readonly mediaId: string;
  readonly mediaType: string | null;
  readonly mediaLength: number | null;
  readonly createdTs: number;
  readonly uploadName: string | null;
  readonly filesystemId: string;
  readonly lastAccessTs: number;
  readonly quarantinedBy: string | null;
  readonly authenticated: boolean;
  readonly sha256: string | null;
}

export interface StoredContent {
  mediaType: string;
  mediaLength: number;
  uploadName: string | null;
  sha256: string;
  /** Computed while the bytes streamed (UploadMeter). */
  md5: string;
  quarantinedBy: string | null;
}

export interface LocalThumbnail {
  readonly width: number;
  readonly height: number;
  readonly contentType: string;
  readonly method: "crop" | "scale";
  readonly length: number;
}

export class MediaRepository {
  // The hot path's reads (cache misses), compiled once: compiled-select.ts.
  readonly #local = new CompiledSelect(
    () => this.database.db,
    (mediaId: string) =>
      this.database.db
        .selectFrom("local_media_repository")
        .selectAll()
        .where("media_id", "=", mediaId),
  );
  readonly #remote = new CompiledSelect(
    () => this.database.db,
    (origin: string, mediaId: string) =>
      this.database.db
        .selectFrom("remote_media_cache")
        .selectAll()
        .where("media_origin", "=", origin)
        .where("media_id", "=", mediaId),
  );
  readonly #localThumbnails = new CompiledSelect(
    () => this.database.db,
    (mediaId: string) =>
      this.database.db
        .selectFrom("local_media_repository_thumbnails")
        .selectAll()
        .where("media_id", "=", mediaId),
  );
  readonly #remoteThumbnails = new CompiledSelect(
    () => this.database.db,
    (origin: string, mediaId: string) =>
      this.database.db
        .selectFrom("remote_media_cache_thumbnails")
        .selectAll()
        .where("media_origin", "=", origin)
        .where("media_id", "=", mediaId),
  );

  constructor(
    private readonly database: Database,
    private readonly changes: MediaChanges,
  ) {}

  async getLocal(mediaId: string): Promise<LocalMedia | undefined> {
    const [row] = await this.#local.execute(mediaId);
    return row && toLocalMedia(row);
  }

  /** A cached remote media row, by its origin and remote media id. */
  async getRemote(origin: string, mediaId: string): Promise<RemoteMedia | undefined> {
    const [row] = await this.#remote.execute(origin, mediaId);
    return row && toRemoteMedia(row);
  }

  /** Inserts a freshly cached remote media item (inside the caller's transaction). */
  async insertRemote(
    media: Omit<RemoteMedia, "lastAccessTs" | "pdq" | "pdqQuality">,
    db: Db = this.database.db,
  ): Promise<void> {
    await db
      .insertInto("remote_media_cache")
      .values({
        media_origin: media.origin,
        media_id: media.mediaId,
        media_type: media.mediaType,
        media_length: media.mediaLength,
        created_ts: media.createdTs,
        upload_name: media.uploadName,
        filesystem_id: media.filesystemId,
        last_access_ts: media.createdTs,
        quarantined_by: media.quarantinedBy,
        authenticated: media.authenticated,
        sha256: media.sha256,
        md5: media.md5,
        ...admissionPdqColumns(media.mediaType),
      })
      .execute();
  }

  /** Raises `last_access_ts` of cached remote media (keys are `origin/mediaId`). */
  async recordRemoteAccess(accesses: ReadonlyMap<string, number>): Promise<void> {
    if (accesses.size === 0) return;
    await this.database.transaction(async (tx) => {
      for (const [key, ts] of accesses) {
        const slash = key.indexOf("/");
        await tx
          .updateTable("remote_media_cache")
          .set({ last_access_ts: ts })
          .where("media_origin", "=", key.slice(0, slash))
          .where("media_id", "=", key.slice(slash + 1))
          .where("last_access_ts", "<", ts)
          .execute();
      }
    });
  }

  /** Inserts a complete upload. */
  async insertLocal(
    media: StoredContent & {
      mediaId: string;
      userId: string;
      createdTs: number;
      authenticated: boolean;
      /** The previewed URL, for URL-preview media (stored under `url_cache/`). */
      urlCache?: string | null;
    },
    db: Db = this.database.db,
  ): Promise<void> {
    await db
      .insertInto("local_media_repository")
      .values({
        media_id: media.mediaId,
        media_type: media.mediaType,
        media_length: media.mediaLength,
        created_ts: media.createdTs,
        upload_name: media.uploadName,
        user_id: media.userId,
        quarantined_by: media.quarantinedBy,
        authenticated: media.authenticated,
        sha256: media.sha256,
        md5: media.md5,
        ...admissionPdqColumns(media.mediaType),
        url_cache: media.urlCache ?? null,
      })
      .execute();
  }

  /** Inserts a pending (`/create`d) id with no content. */
  async insertPending(media: {
    mediaId: string;
    userId: string;
    createdTs: number;
    authenticated: boolean;
  }): Promise<void> {
    await this.database.db
      .insertInto("local_media_repository")
      .values({
        media_id: media.mediaId,
        created_ts: media.createdTs,
        user_id: media.userId,
        authenticated: media.authenticated,
      })
      .execute();
  }

  /** How many ids `userId` holds without content, created at or after `sinceTs`. */
  async countPending(userId: string, sinceTs: number): Promise<number> {
    const row = await this.database.db
      .selectFrom("local_media_repository")
      .select((eb) => eb.fn.countAll<number>().as("n"))
      .where("user_id", "=", userId)
      .where("created_ts", ">=", sinceTs)
      .where((eb) => eb.or([eb("media_length", "is", null), eb("media_length", "=", CLAIMED)]))
      .executeTakeFirstOrThrow();
    return Number(row.n);
  }

  /**
   * The creation time of `userId`'s oldest pending id created at or after
   * `sinceTs` (the one that expires first), or undefined when none is.
   */
  async oldestPendingCreatedTs(userId: string, sinceTs: number): Promise<number | undefined> {
    const row = await this.database.db
      .selectFrom("local_media_repository")
      .select((eb) => eb.fn.min<number>("created_ts").as("oldest"))
      .where("user_id", "=", userId)
      .where("created_ts", ">=", sinceTs)
      .where((eb) => eb.or([eb("media_length", "is", null), eb("media_length", "=", CLAIMED)]))
      .executeTakeFirst();
    return row?.oldest == null ? undefined : Number(row.oldest);
  }

  /**
   * Claims a pending id for one upload; false when it has content (or is
   * gone). Call only while holding the id's upload lock: an existing claim is
   * then one whose upload died with its process, and is taken over.
   */
  async claimPending(mediaId: string): Promise<boolean> {
    const result = await this.database.db
      .updateTable("local_media_repository")
      .set({ media_length: CLAIMED })
      .where("media_id", "=", mediaId)
      .where("sha256", "is", null)
      .where((eb) => eb.or([eb("media_length", "is", null), eb("media_length", "=", CLAIMED)]))
      .executeTakeFirst();
    return Number(result.numUpdatedRows) === 1;
  }

  /**
   * Records the blur preview of local media (migration 0018; made once, when
   * its thumbnails are pre-generated). A deleted row is left deleted. The
   * metadata cache holds no preview, so nothing needs invalidating.
   */
  async setLocalBlurPreview(mediaId: string, preview: string): Promise<void> {
    await this.database.db
      .updateTable("local_media_repository")
      .set({ blur_preview: preview })
      .where("media_id", "=", mediaId)
      .execute();
  }

  /** Gives a claimed id back (the upload failed), so it can be uploaded again. */
  async releaseClaim(mediaId: string): Promise<void> {
    await this.database.db
      .updateTable("local_media_repository")
      .set({ media_length: null })
      .where("media_id", "=", mediaId)
      .where("media_length", "=", CLAIMED)
      .execute();
  }

  /**
   * Stores the content metadata of a claimed id. Its quarantine state is left
   * as it is: an id can be quarantined while it waits for its bytes.
   * False when the row is no longer claimed (deleted meanwhile).
   */
  async completeClaim(
    mediaId: string,
    content: Omit<StoredContent, "quarantinedBy">,
    db: Db = this.database.db,
  ): Promise<boolean> {
    const result = await db
      .updateTable("local_media_repository")
      .set({
        media_type: content.mediaType,
        media_length: content.mediaLength,
        upload_name: content.uploadName,
        sha256: content.sha256,
        md5: content.md5,
        ...admissionPdqColumns(content.mediaType),
      })
      .where("media_id", "=", mediaId)
      .where("media_length", "=", CLAIMED)
      .executeTakeFirst();
    return Number(result.numUpdatedRows) === 1;
  }

  /** Raises `last_access_ts` of each local media to the given time (never lowers it). */
  async recordLocalAccess(accesses: ReadonlyMap<string, number>): Promise<void> {
    if (accesses.size === 0) return;
    await this.database.transaction(async (tx) => {
      for (const [mediaId, ts] of accesses) {
        await tx
          .updateTable("local_media_repository")
          .set({ last_access_ts: ts })
          .where("media_id", "=", mediaId)
          .where((eb) => eb.or([eb("last_access_ts", "is", null), eb("last_access_ts", "<", ts)]))
          .execute();
      }
    });
  }

  async listLocalThumbnails(mediaId: string): Promise<LocalThumbnail[]> {
    return (await this.#localThumbnails.execute(mediaId)).map(toThumbnail);
  }

  async listRemoteThumbnails(origin: string, mediaId: string): Promise<LocalThumbnail[]> {
    return (await this.#remoteThumbnails.execute(origin, mediaId)).map(toThumbnail);
  }

  /**
   * Records a thumbnail of cached remote media; a second record of the same
   * one is ignored. Records nothing and returns false when the cached item's
   * row is gone (purged while the thumbnail was being made).
   */
  async insertRemoteThumbnail(
    origin: string,
    mediaId: string,
    filesystemId: string,
    thumbnail: LocalThumbnail,
  ): Promise<boolean> {
    return this.database.transaction(async (tx) => {
      const media = await tx
        .selectFrom("remote_media_cache")
        .select("media_id")
        .where("media_origin", "=", origin)
        .where("media_id", "=", mediaId)
        .executeTakeFirst();
      if (!media) return false;
      await tx
        .insertInto("remote_media_cache_thumbnails")
        .values({
          media_origin: origin,
          media_id: mediaId,
          filesystem_id: filesystemId,
          thumbnail_width: thumbnail.width,
          thumbnail_height: thumbnail.height,
          thumbnail_type: thumbnail.contentType,
          thumbnail_method: thumbnail.method,
          thumbnail_length: thumbnail.length,
        })
        .onConflict((oc) => oc.doNothing())
        .execute();
      afterCommit(tx, () => this.changes.publish({ kind: "remote", origin, mediaId }));
      return true;
    });
  }

  /**
   * Records a stored thumbnail; a second record of the same one is ignored.
   * Records nothing and returns false when the media row is gone (deleted
   * while the thumbnail was being made), so no orphan row is left.
   */
  async insertLocalThumbnail(mediaId: string, thumbnail: LocalThumbnail): Promise<boolean> {
    return this.database.transaction(async (tx) => {
      const media = await tx
        .selectFrom("local_media_repository")
        .select("media_id")
        .where("media_id", "=", mediaId)
        .executeTakeFirst();
      if (!media) return false;
      await tx
        .insertInto("local_media_repository_thumbnails")
        .values({
          media_id: mediaId,
          thumbnail_width: thumbnail.width,
          thumbnail_height: thumbnail.height,
          thumbnail_type: thumbnail.contentType,
          thumbnail_method: thumbnail.method,
          thumbnail_length: thumbnail.length,
        })
        .onConflict((oc) => oc.doNothing())
        .execute();
      afterCommit(tx, () => this.changes.publish({ kind: "local", mediaId }));
      return true;
    });
  }
}

/** A local or remote thumbnail row as `LocalThumbnail`. */
function toThumbnail(r: {
  thumbnail_width: number;
  thumbnail_height: number;
  thumbnail_type: string;
  thumbnail_method: string;
  thumbnail_length: number;
}): LocalThumbnail {
  return {
    width: r.thumbnail_width,
    height: r.thumbnail_height,
    contentType: r.thumbnail_type,
    // Synapse writes only these two; anything else is treated as scale.
    method: r.thumbnail_method === "crop" ? "crop" : "scale",
    length: Number(r.thumbnail_length),
  };
}

/** A `local_media_repository` row as read (flags may be 0/1 on SQLite). */
export type LocalRow = {
  media_id: string;
  media_type: string | null;
  media_length: number | null;
  created_ts: number;
  upload_name: string | null;
  user_id: string | null;
  quarantined_by: string | null;
  url_cache: string | null;
  last_access_ts: number | null;
  safe_from_quarantine: boolean | number;
  authenticated: boolean | number;
  sha256: string | null;
  md5: string | null;
  pdq: string | null;
  pdq_quality: number | null;
};

/** A row as `LocalMedia`: numbers from bigint text, flags from 0/1, a claimed length as null. */
export function toLocalMedia(row: LocalRow): LocalMedia {
  const length = row.media_length === null ? null : Number(row.media_length);
  return {
    mediaId: row.media_id,
    mediaType: row.media_type,
    mediaLength: length === CLAIMED ? null : length,
    createdTs: Number(row.created_ts),
    uploadName: row.upload_name,
    userId: row.user_id,
    quarantinedBy: row.quarantined_by,
    urlCache: row.url_cache,
    lastAccessTs: row.last_access_ts === null ? null : Number(row.last_access_ts),
    safeFromQuarantine: Boolean(row.safe_from_quarantine),
    authenticated: Boolean(row.authenticated),
    sha256: row.sha256,
    md5: row.md5,
    pdq: row.pdq,
    pdqQuality: row.pdq_quality === null ? null : Number(row.pdq_quality),
  };
}

/** A `remote_media_cache` row as read (flags may be 0/1 on SQLite). */
export type RemoteRow = Omit<Selectable<RemoteMediaTable>, "pdq_status" | "pdq_reason">;

/** A row as `RemoteMedia`: numbers from bigint text, flags from 0/1. */
export function toRemoteMedia(row: RemoteRow): RemoteMedia {
  return {
    origin: row.media_origin,
    mediaId: row.media_id,
    mediaType: row.media_type,
    mediaLength: row.media_length === null ? null : Number(row.media_length),
    createdTs: Number(row.created_ts),
    uploadName: row.upload_name,
    filesystemId: row.filesystem_id,
    lastAccessTs: Number(row.last_access_ts),
    quarantinedBy: row.quarantined_by,
    authenticated: Boolean(row.authenticated),
    sha256: row.sha256,
    md5: row.md5,
    pdq: row.pdq,
    pdqQuality: row.pdq_quality === null ? null : Number(row.pdq_quality),
  };
}
