/**
 * A one-shot wake-up that is armed *before* a check and awaited after it, so
 * a signal that arrives between the check and the wait is not lost — the
 * classic race of "check, then sleep until notified". Used by everything
 * that waits for another request or process: pending uploads, the feed's
 * long-poll, cross-process single flight.
 */
export class Wakeup {
  #woken = false;
  #resolve: (() => void) | undefined;
  readonly #unsubscribe: () => void;

  /**
   * Arms at once: `subscribe` registers `wake` with a signal source and
   * returns its unsubscribe function. An abort of `signal` wakes too.
   */
  constructor(subscribe: (wake: () => void) => () => void, signal?: AbortSignal) {
    const wake = () => {
      this.#woken = true;
      this.#resolve?.();
    };
    const unsubscribe = subscribe(wake);
    signal?.addEventListener("abort", wake, { once: true });
    this.#unsubscribe = () => {
      unsubscribe();
      signal?.removeEventListener("abort", wake);
    };
  }

  /** True once a signal (or the abort) arrived. */
  get woken(): boolean {
    return this.#woken;
  }

  /** Resolves when woken — at once if that already happened — or after `ms`. */
  wait(ms: number): Promise<void> {
    if (this.#woken) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(finish, Math.max(0, ms));
      function finish() {
        clearTimeout(timer);
        resolve();
      }
      this.#resolve = finish;
    });
  }

  /** Unsubscribes; a pending `wait` resolves. Call it when done. */
  close(): void {
    this.#unsubscribe();
    this.#resolve?.();
  }
}
