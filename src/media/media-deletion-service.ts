/**
 * Deleting local media (A4, A12, A13; later retention and the redaction
 * policy) and purging the remote media cache (A14), per
 * synapse-media-admin.md §5 with DESIGN.md point 5.
 *
 * Design notes:
 * - One item at a time: bytes first, then every thumbnail under its prefix,
 *   then its rows in one small transaction. A crash leaves at worst a row
 *   whose files are (partly) gone, which a retry finishes — never a file
 *   that no row points at. No transaction is held while files are deleted.
 * - Local content is deleted once more after its rows: an async upload
 *   finishing in between would otherwise leave a file no row points at.
 * - A file that is already missing counts as deleted. Any other storage
 *   failure skips the item: its row stays (so the work can be retried), it is
 *   not reported as deleted, and the error is logged.
 * - URL-preview media (`url_cache` set) lives under `url_cache/`, not
 *   `local_content/` (Synapse deletes the wrong path, §5.1).
 * - Bulk deletions walk candidates in keyset batches of `batchSize`, so
 *   memory is bounded by the batch, whatever the number of old media; only
 *   the ids for the response accumulate.
 */
import type { Db } from "../db/database.js";
import type { Logger } from "../logging/logger.js";
import type {
  Cursor,
  LocalMediaItem,
  MediaAdminRepository,
  RemoteCacheItem,
  UserMediaPage,
} from "../repositories/media-admin-repository.js";
import { BlobNotFoundError, type BlobStore } from "../storage/blob-store.js";
import {
  localContentKey,
  localThumbnailPrefix,
  remoteContentKey,
  remoteThumbnailPrefix,
  urlCacheKey,
  urlCacheThumbnailPrefix,
} from "../storage/media-paths.js";

export interface MediaDeletionSettings {
  readonly serverName: string;
  /** Candidates read (and deleted) per batch by bulk deletions; default 500. */
  readonly batchSize?: number;
  /** Items whose files are deleted at once within a batch; default 4. */
  readonly concurrency?: number;
}

/** A13's selection: see `deleteOldMedia`. */
export interface OldMediaCriteria {
  readonly beforeTs: number;
  readonly sizeGt: number;
  readonly keepProfiles: boolean;
}

/** What purging a cached remote item needs to know: its key and where its files live. */
export type RemoteFiles = Pick<RemoteCacheItem, "origin" | "mediaId" | "filesystemId">;

/** The slice of the media-reference index `keep_profiles` needs. */
export interface AvatarReferences {
  avatarReferenced(origin: string, mediaIds: readonly string[]): Promise<Set<string>>;
}

export class MediaDeletionService {
  readonly #batchSize: number;
  readonly #concurrency: number;

  constructor(
    private readonly settings: MediaDeletionSettings,
    private readonly repo: MediaAdminRepository,
    private readonly references: AvatarReferences,
    private readonly store: BlobStore,
    private readonly logger: Pick<Logger, "error">,
  ) {
    this.#batchSize = settings.batchSize ?? 500;
    this.#concurrency = settings.concurrency ?? 4;
  }

  /**
   * THE local deletion: deletes each item's bytes, thumbnails and rows (see
   * the module note) and returns the ids actually deleted, in input order.
   * Ignores quarantine and protection: callers choose what to pass.
   */
  deleteLocalMediaItems(items: readonly LocalMediaItem[]): Promise<string[]> {
    return this.#forEach(items, async (item) =>
      (await this.#deleteLocalItem(item)) ? item.mediaId : undefined,
    );
  }

  /**
   * The same deletion for a background job's batch (the URL-preview expiry
   * job): each item's files first, then its rows through the batch's
   * transaction `tx`, which commits them together with the job's progress.
   * A rollback leaves rows whose files are gone, which the job's next batch
   * finishes (the module note's rule: never a file without a row).
   */
  deleteLocalMediaItemsIn(tx: Db, items: readonly LocalMediaItem[]): Promise<string[]> {
    return this.#forEach(items, async (item) =>
      (await this.#deleteLocalItem(item, tx)) ? item.mediaId : undefined,
    );
  }

  /**
   * The remote purge of `purgeRemoteCache` for a background job's batch (media
   * retention): each item's files first, then its rows through `tx`, as
   * `deleteLocalMediaItemsIn`. Returns the items actually purged.
   */
  purgeRemoteItemsIn<T extends RemoteFiles>(tx: Db, items: readonly T[]): Promise<T[]> {
    return this.#forEach(items, async (item) =>
      (await this.#purgeRemoteItem(item, tx)) ? item : undefined,
    );
  }

  /**
   * Deletes one local media item by id: "deleted", "unknown" (no such row) or
   * "kept" (its files could not be removed; logged). Fits
   * `LocalMediaModeration.deleteLocalMedia` (the redaction policy), and is A12.
   */
  async deleteLocalMedia(mediaId: string): Promise<"deleted" | "unknown" | "kept"> {
    const item = await this.repo.getLocalItem(mediaId);
    if (!item) return "unknown";
    return (await this.#deleteLocalItem(item)) ? "deleted" : "kept";
  }

  /** A4: deletes the page of a user's media that A3 would list; returns the deleted ids. */
  async deleteUserMedia(page: UserMediaPage): Promise<string[]> {
    const deleted: string[] = [];
    let skipped = 0;
    // Walk the page in chunks: deleted rows leave the ordering, so the next
    // chunk starts at `from` plus the rows this call kept.
    for (let done = 0; done < page.limit; ) {
      const limit = Math.min(this.#batchSize, page.limit - done);
      const rows = await this.repo.listUserMedia({ ...page, from: page.from + skipped, limit });
      const ids = await this.deleteLocalMediaItems(rows);
      deleted.push(...ids);
      skipped += rows.length - ids.length;
      done += rows.length;
      if (rows.length < limit) break;
    }
    return deleted;
  }

  /**
   * A13: deletes local media older than `beforeTs` (last accessed before it,
   * or never accessed and created before it) and larger than `sizeGt` bytes.
   * Always spares quarantined and protected media; with `keepProfiles`, also
   * media used as a profile, member or current room avatar.
   */
  async deleteOldMedia(criteria: OldMediaCriteria): Promise<string[]> {
    const deleted: string[] = [];
    for (const rule of ["accessed", "never_accessed"] as const) {
      let after: Cursor | undefined;
      for (;;) {
        const batch = await this.repo.oldLocalMediaBatch(criteria, rule, after, this.#batchSize);
        if (batch.length === 0) break;
        after = batch[batch.length - 1]!.cursor;
        const kept = criteria.keepProfiles
          ? await this.references.avatarReferenced(
              this.settings.serverName,
              batch.map((c) => c.mediaId),
            )
          : new Set<string>();
        deleted.push(
          ...(await this.deleteLocalMediaItems(batch.filter((c) => !kept.has(c.mediaId)))),
        );
        if (batch.length < this.#batchSize) break;
      }
    }
    return deleted;
  }

  /**
   * A14: purges cached remote media last accessed before `beforeTs`, except
   * quarantined media: the original, every thumbnail file and the rows.
   * Returns how many items were purged.
   */
  async purgeRemoteCache(beforeTs: number): Promise<number> {
    let purged = 0;
    let after: Cursor | undefined;
    for (;;) {
      const batch = await this.repo.oldRemoteMediaBatch(beforeTs, after, this.#batchSize);
      if (batch.length === 0) break;
      after = batch[batch.length - 1]!.cursor;
      const done = await this.#forEach(batch, async (item) =>
        (await this.#purgeRemoteItem(item)) ? item : undefined,
      );
      purged += done.length;
      if (batch.length < this.#batchSize) break;
    }
    return purged;
  }

  async #deleteLocalItem(item: LocalMediaItem, tx?: Db): Promise<boolean> {
    const removed = await this.#removeFiles(() =>
      item.urlCache === null
        ? [localContentKey(item.mediaId), localThumbnailPrefix(item.mediaId)]
        : [urlCacheKey(item.mediaId), urlCacheThumbnailPrefix(item.mediaId)],
    );
    if (!removed.ok) {
      this.logger.error(
        { err: removed.error, media_id: item.mediaId },
        "could not delete media files; kept its row",
      );
      return false;
    }
    await this.repo.deleteLocalRows(item.mediaId, tx);
    if (item.urlCache === null) {
      // Thumbnails written while the files above were being removed (a
      // pre-generation racing this deletion) go in a second pass, now that
      // the row is gone: from here on ThumbnailService records none and
      // removes any file it writes.
      const swept = await this.#removeFiles(() => [
        localContentKey(item.mediaId),
        localThumbnailPrefix(item.mediaId),
      ]);
      if (!swept.ok) {
        this.logger.error({ err: swept.error, media_id: item.mediaId }, "thumbnail sweep failed");
      }
    }
    return true;
  }

  async #purgeRemoteItem(item: RemoteFiles, tx?: Db): Promise<boolean> {
    const removed = await this.#removeFiles(() => [
      remoteContentKey(item.origin, item.filesystemId),
      remoteThumbnailPrefix(item.origin, item.filesystemId),
    ]);
    if (!removed.ok) {
      this.logger.error(
        { err: removed.error, media_origin: item.origin, media_id: item.mediaId },
        "could not delete cached remote media files; kept its row",
      );
      return false;
    }
    await this.repo.deleteRemoteRows(item.origin, item.mediaId, tx);
    return true;
  }

  /**
   * Deletes the content blob, then every key under the thumbnail prefix.
   * `paths` may throw (a stored id unsafe as a path): that is a failure too.
   */
  async #removeFiles(
    paths: () => [content: string, thumbnailPrefix: string],
  ): Promise<{ ok: true } | { ok: false; error: unknown }> {
    try {
      const [content, thumbnailPrefix] = paths();
      await this.store.delete(content).catch((error: unknown) => {
        if (!(error instanceof BlobNotFoundError)) throw error;
      });
      // Collect first: deleting while a listing is being walked is not safe on every store.
      const thumbnails: string[] = [];
      for await (const key of this.store.list(thumbnailPrefix)) thumbnails.push(key);
      for (const key of thumbnails) await this.store.delete(key);
      return { ok: true };
    } catch (error) {
      return { ok: false, error };
    }
  }

  /** Runs `work` over `items`, `concurrency` at a time; the defined results, in input order. */
  async #forEach<T, R>(
    items: readonly T[],
    work: (item: T) => Promise<R | undefined>,
  ): Promise<R[]> {
    const results: (R | undefined)[] = new Array(items.length);
    let next = 0;
    const worker = async () => {
      while (next < items.length) {
        const index = next++;
        results[index] = await work(items[index]!);
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.#concurrency, items.length) }, worker));
    return results.filter((r): r is R => r !== undefined);
  }
}
