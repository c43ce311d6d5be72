/**
 * The media metadata cache of the hot path (docs/deployment.md "Caches"):
 * local and remote media rows and their thumbnail rows, so a repeated
 * download or thumbnail of the same item costs no database query.
 *
 * Design note.
 * - Bounded: at most `maxEntries` entries (rows and thumbnail lists alike),
 *   least recently used evicted first (lru-cache); each entry also expires
 *   `ttlMs` after it was read from the database — the backstop for a lost
 *   invalidation (media-changes.ts).
 * - Cached: complete rows and thumbnail lists (empty ones too: a thumbnail
 *   insert publishes a change). Not cached: unknown media (a later upload
 *   or fetch would have to invalidate it) and pending local rows (an async
 *   upload's id waiting for its bytes changes without a cache's knowledge
 *   of the waiters).
 * - Every change (MediaChanges) forgets the item's row and thumbnail list;
 *   `all` forgets everything. A miss that raced with an invalidation (read
 *   the old row, then the change arrived) does not store what it read: every
 *   invalidation bumps a generation, and a read stores only when the
 *   generation it started in is still current (read-through-lru.ts).
 * - `last_access_ts` of a cached row may be stale (access times are flushed
 *   in batches and are not announced); the hot path does not read it.
 */
import type { LocalMedia, LocalThumbnail, RemoteMedia } from "../repositories/media-repository.js";
import type { CacheStats } from "./cache-stats.js";
import type { ChangeSource } from "./change-signal.js";
import type { MediaChange, MediaChanges } from "./media-changes.js";
import { ReadThroughLru, type ReadThroughLruOptions } from "./read-through-lru.js";

/** The reads this cache fronts (MediaRepository's). */
export interface MediaRowReads {
  getLocal(mediaId: string): Promise<LocalMedia | undefined>;
  getRemote(origin: string, mediaId: string): Promise<RemoteMedia | undefined>;
  listLocalThumbnails(mediaId: string): Promise<readonly LocalThumbnail[]>;
  listRemoteThumbnails(origin: string, mediaId: string): Promise<readonly LocalThumbnail[]>;
}

export type MediaMetadataCacheOptions = ReadThroughLruOptions;
/** The rows this cache holds, for its readers outside the data layer (src/http). */
export type { LocalMedia, LocalThumbnail };

type Value = LocalMedia | RemoteMedia | readonly LocalThumbnail[];

export class MediaMetadataCache implements MediaRowReads {
  readonly #cache: ReadThroughLru<Value>;

  constructor(
    private readonly rows: MediaRowReads,
    changes: MediaChanges,
    options: MediaMetadataCacheOptions,
  ) {
    this.#cache = new ReadThroughLru(options);
    changes.subscribe((change, source) => this.#forget(change, source));
  }

  get stats(): CacheStats {
    return this.#cache.stats;
  }

  getLocal(mediaId: string): Promise<LocalMedia | undefined> {
    return this.#cache.read(
      `l\n${mediaId}`,
      () => this.rows.getLocal(mediaId),
      (row) => row.mediaLength !== null,
    );
  }

  getRemote(origin: string, mediaId: string): Promise<RemoteMedia | undefined> {
    return this.#cache.read(`r\n${origin}\n${mediaId}`, () => this.rows.getRemote(origin, mediaId));
  }

  /** Shared with the cache: read-only. */
  async listLocalThumbnails(mediaId: string): Promise<readonly LocalThumbnail[]> {
    const list = await this.#cache.read(`tl\n${mediaId}`, () =>
      this.rows.listLocalThumbnails(mediaId),
    );
    return list ?? [];
  }

  /** Shared with the cache: read-only. */
  async listRemoteThumbnails(origin: string, mediaId: string): Promise<readonly LocalThumbnail[]> {
    const list = await this.#cache.read(`tr\n${origin}\n${mediaId}`, () =>
      this.rows.listRemoteThumbnails(origin, mediaId),
    );
    return list ?? [];
  }

  /**
   * The cached row of local media, or undefined: no load, nothing counted
   * (ReadThroughLru.cached). Only complete rows are ever cached.
   */
  cachedLocal(mediaId: string): LocalMedia | undefined {
    return this.#cache.cached(`l\n${mediaId}`) as LocalMedia | undefined;
  }

  /** The cached thumbnail list of local media, or undefined (as `cachedLocal`). Read-only. */
  cachedLocalThumbnails(mediaId: string): readonly LocalThumbnail[] | undefined {
    return this.#cache.cached(`tl\n${mediaId}`) as readonly LocalThumbnail[] | undefined;
  }

  /** True when local media's row was cached and its lifetime is over (ReadThroughLru.expired). */
  expiredLocal(mediaId: string): boolean {
    return this.#cache.expired(`l\n${mediaId}`);
  }

  /** True when local media's thumbnail list was cached and its lifetime is over. */
  expiredLocalThumbnails(mediaId: string): boolean {
    return this.#cache.expired(`tl\n${mediaId}`);
  }

  #forget(change: MediaChange, source: ChangeSource): void {
    const entries = this.#cache.invalidate(source);
    if (!entries) return;
    switch (change.kind) {
      case "local":
        entries.delete(`l\n${change.mediaId}`);
        entries.delete(`tl\n${change.mediaId}`);
        return;
      case "remote":
        entries.delete(`r\n${change.origin}\n${change.mediaId}`);
        entries.delete(`tr\n${change.origin}\n${change.mediaId}`);
        return;
      case "all":
        entries.clear();
        return;
      default: {
        const unknown: never = change;
        throw new Error(`unknown media change ${JSON.stringify(unknown)}`);
      }
    }
  }
}
