/**
 * Remembers what the header of an original said (its ImageInfo, or "not an
 * image"), so that "serve the original", "too large" and "not an image"
 * are decided without reading the original again. Stored bytes never change
 * under a key (media ids are never reused), so an entry never goes stale;
 * an entry of deleted media is merely unused.
 *
 * Bounded: at most `capacity` entries (an entry is a few hundred bytes);
 * the least recently used one is evicted first (a Map keeps insertion
 * order; a hit is moved to the end).
 */
import type { ImageInfo } from "./thumbnailer.js";

/** A probe outcome: the header facts, or null for "not an image mxcd thumbnails". */
export type ProbeOutcome = ImageInfo | null;

export class ProbeCache {
  readonly #entries = new Map<string, ProbeOutcome>();

  constructor(private readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) {
      throw new RangeError(`probe cache capacity must be an integer >= 1, got ${capacity}`);
    }
  }

  get size(): number {
    return this.#entries.size;
  }

  /** The outcome remembered for `key`, or undefined when it was never probed (or evicted). */
  get(key: string): ProbeOutcome | undefined {
    const outcome = this.#entries.get(key);
    if (outcome === undefined) return undefined;
    this.#entries.delete(key);
    this.#entries.set(key, outcome);
    return outcome;
  }

  set(key: string, outcome: ProbeOutcome): void {
    this.#entries.delete(key);
    this.#entries.set(key, outcome);
    if (this.#entries.size > this.capacity) {
      this.#entries.delete(this.#entries.keys().next().value!);
    }
  }
}
