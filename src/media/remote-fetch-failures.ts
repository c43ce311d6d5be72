/**
 * Bounded memory of failed remote fetches, and a rate limit on the warnings
 * they log (DESIGN/STYLE "bounded by construction").
 *
 * Anyone can ask for `mxc://<any server>/<any id>`, so the keys of both
 * tables are chosen by strangers: each table is an LRU with a fixed number
 * of entries and a time-to-live, so 20,000 requests for distinct ids of a
 * dead server cost at most `maxEntries` entries, each gone after its TTL.
 */
import { LRUCache } from "lru-cache";
import type { MatrixError } from "../domain/matrix-error.js";

/** How failures are remembered. */
export interface FailureMemorySettings {
  /** How long a failure is answered from memory instead of fetching again. */
  readonly ttlMs: number;
  /** Most failures remembered at once; the least recently used go first. */
  readonly maxEntries: number;
}

/** Failed fetches by `origin/mediaId`, answered from memory until they expire. */
export class RemoteFetchFailures {
  readonly #entries: LRUCache<string, MatrixError> | undefined;

  constructor(settings: FailureMemorySettings, now: () => number = Date.now) {
    // A TTL of 0 remembers nothing (lru-cache reads 0 as "no TTL").
    if (settings.ttlMs <= 0 || settings.maxEntries <= 0) return;
    this.#entries = new LRUCache<string, MatrixError>({
      max: settings.maxEntries,
      ttl: settings.ttlMs,
      // Exact expiry on the injected clock (no 1 ms rounding cache).
      ttlResolution: 0,
      perf: { now },
    });
  }

  /** The remembered error of a failure of `key` at most `ttlMs` old, or undefined. */
  get(key: string): MatrixError | undefined {
    return this.#entries?.get(key);
  }

  remember(key: string, error: MatrixError): void {
    this.#entries?.set(key, error);
  }

  /** Entries held now (expired ones count until touched or evicted); at most `maxEntries`. */
  get size(): number {
    return this.#entries?.size ?? 0;
  }
}

/** How often one key may log. */
export interface LogLimitSettings {
  /** Per key, one line per interval. */
  readonly intervalMs: number;
  /** Whatever the keys, at most this many lines per interval. */
  readonly maxLinesPerInterval: number;
  /** Keys tracked at once (LRU); a key pushed out may log again early. */
  readonly maxKeys: number;
}

/**
 * Decides which warnings are logged: one per key (e.g. per origin) per
 * interval, and at most `maxLinesPerInterval` in all, since origins too are
 * chosen by whoever sends the requests. The lines held back are counted and
 * the count goes out with the next line logged.
 */
export class LogLimiter {
  /** When each key last logged. */
  readonly #keys: LRUCache<string, number>;
  readonly #settings: LogLimitSettings;
  readonly #now: () => number;
  #windowStart = Number.NEGATIVE_INFINITY;
  #linesInWindow = 0;
  #suppressed = 0;

  constructor(settings: LogLimitSettings, now: () => number = Date.now) {
    this.#settings = settings;
    this.#now = now;
    this.#keys = new LRUCache<string, number>({ max: settings.maxKeys });
  }

  /**
   * Undefined when this line is to be dropped (it is counted); else the
   * number of lines dropped since the last one logged, to log with it.
   */
  admit(key: string): { suppressed: number } | undefined {
    const now = this.#now();
    if (now - this.#windowStart >= this.#settings.intervalMs) {
      this.#windowStart = now;
      this.#linesInWindow = 0;
    }
    const last = this.#keys.get(key);
    const keyQuiet = last === undefined || now - last >= this.#settings.intervalMs;
    if (!keyQuiet || this.#linesInWindow >= this.#settings.maxLinesPerInterval) {
      this.#suppressed += 1;
      return undefined;
    }
    this.#keys.set(key, now);
    this.#linesInWindow += 1;
    const suppressed = this.#suppressed;
    this.#suppressed = 0;
    return { suppressed };
  }

  /** Lines dropped since the last one logged. */
  get suppressed(): number {
    return this.#suppressed;
  }
}
