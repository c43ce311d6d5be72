/**
 * A counting semaphore for bounding CPU-heavy work (thumbnail generation uses
 * one with `max_thumbnail_concurrency` permits). Waiters are served in FIFO
 * order; a waiter whose AbortSignal fires leaves the queue without ever
 * taking a permit. With `maxWaiting` the queue is bounded too (URL-preview
 * fetches): a caller that would wait beyond it is refused at once with
 * SemaphoreFullError instead of queueing without bound.
 */

/** `acquire` when every permit is held and `maxWaiting` callers already wait. */
export class SemaphoreFullError extends Error {
  constructor(readonly maxWaiting: number) {
    super(`semaphore queue is full (${maxWaiting} waiting)`);
    this.name = "SemaphoreFullError";
  }
}

export interface SemaphoreOptions {
  /** Callers that may wait for a permit (an integer ≥ 0); default unbounded. */
  readonly maxWaiting?: number;
}

/** Gives back one permit; calling it more than once has no further effect. */
export type Release = () => void;

interface Waiter {
  readonly grant: (release: Release) => void;
}

export class Semaphore {
  readonly #permits: number;
  readonly #maxWaiting: number;
  #active = 0;
  readonly #queue: Waiter[] = [];

  /** @param permits how many holders may run at once (an integer ≥ 1). */
  constructor(permits: number, options: SemaphoreOptions = {}) {
    if (!Number.isInteger(permits) || permits < 1) {
      throw new RangeError(`semaphore permits must be an integer >= 1, got ${permits}`);
    }
    const maxWaiting = options.maxWaiting ?? Number.POSITIVE_INFINITY;
    if (
      !(Number.isInteger(maxWaiting) || maxWaiting === Number.POSITIVE_INFINITY) ||
      maxWaiting < 0
    ) {
      throw new RangeError(`semaphore maxWaiting must be an integer >= 0, got ${maxWaiting}`);
    }
    this.#permits = permits;
    this.#maxWaiting = maxWaiting;
  }

  /** Holders running now (never more than the permits). */
  get active(): number {
    return this.#active;
  }

  /** Callers queued for a permit. */
  get waiting(): number {
    return this.#queue.length;
  }

  /**
   * Resolves with a `Release` once a permit is free. Rejects with the
   * signal's reason (and takes no permit) if `signal` aborts first, and at
   * once with SemaphoreFullError when `maxWaiting` callers already wait.
   */
  acquire(signal?: AbortSignal): Promise<Release> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.#active < this.#permits) {
      this.#active++;
      return Promise.resolve(this.#releaser());
    }
    if (this.#queue.length >= this.#maxWaiting) {
      return Promise.reject(new SemaphoreFullError(this.#maxWaiting));
    }
    return new Promise<Release>((resolve, reject) => {
      const onAbort = () => {
        const index = this.#queue.indexOf(waiter);
        if (index >= 0) this.#queue.splice(index, 1);
        reject(signal?.reason);
      };
      const waiter: Waiter = {
        grant: (release) => {
          signal?.removeEventListener("abort", onAbort);
          resolve(release);
        },
      };
      this.#queue.push(waiter);
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  }

  /** Runs `fn` while holding a permit and releases it however `fn` ends. */
  async run<T>(fn: () => Promise<T> | T, signal?: AbortSignal): Promise<T> {
    const release = await this.acquire(signal);
    try {
      return await fn();
    } finally {
      release();
    }
  }

  #releaser(): Release {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      // Hand the permit straight to the next waiter, so a newcomer calling
      // acquire() in between cannot overtake the queue.
      const next = this.#queue.shift();
      if (next) next.grant(this.#releaser());
      else this.#active--;
    };
  }
}
