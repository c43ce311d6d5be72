/**
 * Remembers what the header of an original said (its ImageInfo, or "not an
 * image"), so that "serve the original", "too large" and "not an image"
 * are decided without reading the original again. Stored bytes never change
 * under a key (media ids are never reused), so an entry never goes stale;
 * an entry of deleted media is merely unused.
 *
 * Bounded: at most `capacity` entries (an entry is a few hundred bytes);
 * the least recently used one is evicted first (lru-cache).
 */
import { LRUCache } from "lru-cache";
import type { ImageInfo } from "./thumbnailer.js";

/** A probe outcome: the header facts, or null for "not an image mxcd thumbnails". */
export type ProbeOutcome = ImageInfo | null;

export class ProbeCache {
  // Boxed: lru-cache stores objects, and null ("not an image") is an outcome.
  readonly #entries: LRUCache<string, { readonly outcome: ProbeOutcome }>;

  constructor(capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) {
      throw new RangeError(`probe cache capacity must be an integer >= 1, got ${capacity}`);
    }
    this.#entries = new LRUCache({ max: capacity });
  }

  get size(): number {
    return this.#entries.size;
  }

  /** The outcome remembered for `key`, or undefined when it was never probed (or evicted). */
  get(key: string): ProbeOutcome | undefined {
    return this.#entries.get(key)?.outcome;
  }

  set(key: string, outcome: ProbeOutcome): void {
    this.#entries.set(key, { outcome });
  }
}
