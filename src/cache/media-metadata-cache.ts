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
 *   generation it started in is still current.
 * - `last_access_ts` of a cached row may be stale (access times are flushed
 *   in batches and are not announced); the hot path does not read it.
 */
import { LRUCache } from "lru-cache";
import type { LocalMedia, LocalThumbnail, RemoteMedia } from "../repositories/media-repository.js";
import { CacheStats } from "./cache-stats.js";
import type { ChangeSource } from "./change-signal.js";
import type { MediaChange, MediaChanges } from "./media-changes.js";

/** The reads this cache fronts (MediaRepository's). */
export interface MediaRowReads {
  getLocal(mediaId: string): Promise<LocalMedia | undefined>;
  getRemote(origin: string, mediaId: string): Promise<RemoteMedia | undefined>;
  listLocalThumbnails(mediaId: string): Promise<readonly LocalThumbnail[]>;
  listRemoteThumbnails(origin: string, mediaId: string): Promise<readonly LocalThumbnail[]>;
}

export interface MediaMetadataCacheOptions {
  /** Entries kept at most; 0 turns the cache off (every read goes to the database). */
  readonly maxEntries: number;
  /** Lifetime of an entry, from its database read. */
  readonly ttlMs: number;
}

type Entry = { readonly value: LocalMedia | RemoteMedia | readonly LocalThumbnail[] };

export class MediaMetadataCache implements MediaRowReads {
  readonly stats = new CacheStats();
  readonly #entries: LRUCache<string, Entry> | undefined;
  /** Bumped by every invalidation (see the design note). */
  #generation = 0;

  constructor(
    private readonly rows: MediaRowReads,
    changes: MediaChanges,
    options: MediaMetadataCacheOptions,
  ) {
    if (options.maxEntries > 0) {
      this.#entries = new LRUCache({ max: options.maxEntries, ttl: options.ttlMs });
    }
    changes.subscribe((change, source) => this.#forget(change, source));
  }

  getLocal(mediaId: string): Promise<LocalMedia | undefined> {
    return this.#read(
      `l\n${mediaId}`,
      () => this.rows.getLocal(mediaId),
      (row) => row.mediaLength !== null,
    );
  }

  getRemote(origin: string, mediaId: string): Promise<RemoteMedia | undefined> {
    return this.#read(`r\n${origin}\n${mediaId}`, () => this.rows.getRemote(origin, mediaId));
  }

  /** Shared with the cache: read-only. */
  async listLocalThumbnails(mediaId: string): Promise<readonly LocalThumbnail[]> {
    const list = await this.#read(`tl\n${mediaId}`, () => this.rows.listLocalThumbnails(mediaId));
    return list ?? [];
  }

  /** Shared with the cache: read-only. */
  async listRemoteThumbnails(origin: string, mediaId: string): Promise<readonly LocalThumbnail[]> {
    const list = await this.#read(`tr\n${origin}\n${mediaId}`, () =>
      this.rows.listRemoteThumbnails(origin, mediaId),
    );
    return list ?? [];
  }

  /** The cached value of `key`, else `load()`'s, stored when found and `cacheable`. */
  async #read<T extends Entry["value"]>(
    key: string,
    load: () => Promise<T | undefined>,
    cacheable: (value: T) => boolean = () => true,
  ): Promise<T | undefined> {
    if (!this.#entries) return load();
    const hit = this.#entries.get(key);
    if (hit) {
      this.stats.hits += 1;
      return hit.value as T;
    }
    this.stats.misses += 1;
    const generation = this.#generation;
    const value = await load();
    if (value !== undefined && cacheable(value) && generation === this.#generation) {
      this.#entries.set(key, { value });
    }
    return value;
  }

  #forget(change: MediaChange, source: ChangeSource): void {
    this.#generation += 1;
    this.stats.invalidations[source] += 1;
    if (!this.#entries) return;
    switch (change.kind) {
      case "local":
        this.#entries.delete(`l\n${change.mediaId}`);
        this.#entries.delete(`tl\n${change.mediaId}`);
        return;
      case "remote":
        this.#entries.delete(`r\n${change.origin}\n${change.mediaId}`);
        this.#entries.delete(`tr\n${change.origin}\n${change.mediaId}`);
        return;
      case "all":
        this.#entries.clear();
        return;
      default: {
        const unknown: never = change;
        throw new Error(`unknown media change ${JSON.stringify(unknown)}`);
      }
    }
  }
}
