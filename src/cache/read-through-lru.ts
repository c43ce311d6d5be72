/**
 * The read-through LRU both hot-path caches are made of (media-metadata-cache.ts,
 * token-cache.ts): bounded by `maxEntries` (0: off, every read loads), each
 * entry living `ttlMs` from its load — the backstop for a lost invalidation —
 * hits and misses counted, and a load that raced with an invalidation not
 * stored: every invalidation bumps a generation, and a load stores only when
 * the generation it started in is still current.
 *
 * An entry whose lifetime is over stays until it is read again (the read
 * loads and replaces it, or forgets it when the load finds nothing to keep),
 * replaced, evicted or forgotten, so `expired` can tell "was here, is due for
 * a re-read" from "never here": the serving fast path re-reads the former
 * itself instead of handing the request to the routes (http/fast-path.ts).
 * An expired entry is never returned by `read` or `cached`.
 *
 * Single flight: concurrent misses of one key share one load. When a busy
 * entry expires, the requests that find it expired at once (32 downloads of
 * one item, say) wait for one database read instead of making one each.
 * Only a load in flight is shared: once it settles, the next miss loads
 * again, so a failed load reaches the callers that were waiting for it and
 * nobody later (nothing failed is cached). A load started before an
 * invalidation is not joined after it: a caller that arrives once the
 * change is known starts a fresh read (flights are keyed by generation).
 * With the cache off (`maxEntries` 0) every read loads on its own, as
 * before.
 */
import { LRUCache } from "lru-cache";
import { SingleFlight } from "../util/single-flight.js";
import { CacheStats } from "./cache-stats.js";
import type { ChangeSource } from "./change-signal.js";

export interface ReadThroughLruOptions {
  /** Entries kept at most; 0 turns the cache off (every read loads). */
  readonly maxEntries: number;
  /** Lifetime of an entry, from its load. */
  readonly ttlMs: number;
  /** The clock of the lifetimes (milliseconds); `performance` when unset. Tests pass a fake one. */
  readonly clock?: { now(): number };
}

export class ReadThroughLru<V extends {}> {
  readonly stats = new CacheStats();
  readonly #entries: LRUCache<string, V> | undefined;
  /**
   * Loads in flight, by generation and key. Bounded by the reads in flight
   * (each removed as it settles), so by the requests being served.
   */
  readonly #flights = new SingleFlight<string, V | undefined>();
  #generation = 0;

  constructor(options: ReadThroughLruOptions) {
    if (options.maxEntries > 0) {
      this.#entries = new LRUCache({
        max: options.maxEntries,
        ttl: options.ttlMs,
        noDeleteOnStaleGet: true,
        // ttlResolution 0: read the given clock every time (the default caches
        // `performance.now()` for 1 ms, refreshed by a real timer).
        ...(options.clock && { perf: options.clock, ttlResolution: 0 }),
      });
    }
  }

  /**
   * The cached value of `key`, else `load()`'s, stored when found and
   * `cacheable`; a load of `key` already in flight (and begun since the last
   * invalidation) is joined instead of starting another. Callers of one key
   * pass the same `load` and `cacheable` (keys name what they hold).
   */
  async read<T extends V>(
    key: string,
    load: () => Promise<T | undefined>,
    cacheable: (value: T) => boolean = () => true,
  ): Promise<T | undefined> {
    const entries = this.#entries;
    if (!entries) return load();
    const hit = entries.get(key);
    if (hit) {
      this.stats.hits += 1;
      return hit as T;
    }
    const generation = this.#generation;
    const flight = `${generation}\n${key}`;
    if (this.#flights.has(flight)) {
      this.stats.shared += 1;
    } else {
      this.stats.misses += 1;
    }
    return this.#flights.run(flight, async () => {
      const value = await load();
      if (generation === this.#generation) {
        // An expired entry of this key is replaced, or forgotten when there is nothing to keep.
        if (value !== undefined && cacheable(value)) entries.set(key, value);
        else entries.delete(key);
      }
      return value;
    }) as Promise<T | undefined>;
  }

  /**
   * The cached value of `key`, or undefined — never a load, nothing counted
   * (the caller counts a hit in `stats` once it uses the value). For the
   * serving fast path (http/fast-path.ts), which answers only clean hits.
   */
  cached(key: string): V | undefined {
    return this.#entries?.get(key);
  }

  /**
   * True when `key` has an entry whose lifetime is over: `read` would load
   * it again (the fast path's cue to re-read instead of handing on).
   */
  expired(key: string): boolean {
    const entries = this.#entries;
    if (!entries || entries.peek(key, { allowStale: true }) === undefined) return false;
    return entries.peek(key) === undefined;
  }

  /**
   * Starts an invalidation from `source`: counted, and loads in flight are
   * not stored. Returns the entries to forget from (undefined when off).
   */
  invalidate(source: ChangeSource): LRUCache<string, V> | undefined {
    this.#generation += 1;
    this.stats.invalidations[source] += 1;
    return this.#entries;
  }
}
