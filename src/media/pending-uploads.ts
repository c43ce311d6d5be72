/**
 * Lets downloads of a `/create`d but not yet uploaded media id wait for its
 * content (Matrix spec, "Asynchronous upload": answer as soon as it is
 * uploaded, else 504 after `timeout_ms`).
 *
 * An upload in this process wakes its waiters at once through `notify`;
 * waiters also re-check every `pollMs`, so an upload finished by another
 * process is seen within that interval.
 */
import { EventEmitter } from "node:events";

export class PendingUploads {
  readonly #events = new EventEmitter();

  constructor(private readonly pollMs = 500) {
    this.#events.setMaxListeners(0);
  }

  /** Wakes everyone waiting for `mediaId`. */
  notify(mediaId: string): void {
    this.#events.emit(mediaId);
  }

  /**
   * Calls `check` until it returns a value, or `timeoutMs` passes (then
   * returns undefined). `check` runs first without waiting.
   */
  async waitFor<T>(
    mediaId: string,
    timeoutMs: number,
    check: () => Promise<T | undefined>,
    signal?: AbortSignal,
  ): Promise<T | undefined> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const value = await check();
      if (value !== undefined) return value;
      const left = deadline - Date.now();
      if (left <= 0 || signal?.aborted) return undefined;
      await this.#sleep(mediaId, Math.min(left, this.pollMs), signal);
    }
  }

  #sleep(mediaId: string, ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        this.#events.off(mediaId, wake);
        signal?.removeEventListener("abort", wake);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      this.#events.on(mediaId, wake);
      signal?.addEventListener("abort", wake, { once: true });
    });
  }
}
