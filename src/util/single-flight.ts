/**
 * Collapses concurrent calls for the same key into one: while a call for a
 * key is in flight, later callers get the same promise instead of starting
 * the work again (used so that concurrent requests for the same missing
 * thumbnail generate it once). Only in-flight work is shared; nothing is
 * cached after it settles.
 */
export class SingleFlight<K, V> {
  readonly #inFlight = new Map<K, Promise<V>>();

  /** How many keys have work in flight. */
  get size(): number {
    return this.#inFlight.size;
  }

  /** True while work for `key` is in flight. */
  has(key: K): boolean {
    return this.#inFlight.has(key);
  }

  /**
   * Returns the in-flight promise for `key`, or starts `fn` and shares its
   * promise with every caller that arrives before it settles. The entry is
   * removed before any caller sees the outcome, so a call made after
   * settling starts fresh work. A rejection (a synchronous throw included)
   * reaches every waiter.
   */
  run(key: K, fn: () => Promise<V>): Promise<V> {
    const existing = this.#inFlight.get(key);
    if (existing) return existing;
    const work = (async () => fn())();
    const shared = work.finally(() => {
      if (this.#inFlight.get(key) === shared) this.#inFlight.delete(key);
    });
    this.#inFlight.set(key, shared);
    return shared;
  }
}
