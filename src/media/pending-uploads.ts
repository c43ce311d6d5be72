/**
 * Lets downloads of a `/create`d but not yet uploaded media id wait for its
 * content (Matrix spec, "Asynchronous upload": answer as soon as it is
 * uploaded, else 504 after `timeout_ms`).
 *
 * An upload announces its completion with `notify` on the notification bus,
 * which wakes waiters in this process at once and in the other processes
 * sharing the database (PostgreSQL NOTIFY) shortly after; waiters also
 * re-check every `pollMs`, in case a notification was lost. A waiter is
 * armed before each check, so a completion between check and sleep is
 * never missed.
 */
import { EventEmitter } from "node:events";
import { InProcessNotificationBus } from "../db/in-process-notification-bus.js";
import type { NotificationBus } from "../db/notification-bus.js";
import { Wakeup } from "../util/wakeup.js";

const CHANNEL = "mxcd_upload_done";

export class PendingUploads {
  readonly #events = new EventEmitter();
  #waiting = 0;

  constructor(
    private readonly bus: NotificationBus = new InProcessNotificationBus(),
    private readonly pollMs = 500,
  ) {
    this.#events.setMaxListeners(0);
    // One subscription for the process, fanned out by media id.
    bus.subscribe(CHANNEL, (mediaId) => this.#events.emit(mediaId));
  }

  /** How many requests are waiting for an upload (a metric). */
  get waiting(): number {
    return this.#waiting;
  }

  /** Wakes everyone waiting for `mediaId`, in every process. Call after the commit. */
  notify(mediaId: string): void {
    this.bus.publish(CHANNEL, mediaId);
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
      const wake = new Wakeup((fn) => {
        this.#events.on(mediaId, fn);
        return () => this.#events.off(mediaId, fn);
      }, signal);
      try {
        const value = await check();
        if (value !== undefined) return value;
        const left = deadline - Date.now();
        if (left <= 0 || signal?.aborted) return undefined;
        this.#waiting += 1;
        await wake.wait(Math.min(left, this.pollMs)).finally(() => {
          this.#waiting -= 1;
        });
      } finally {
        wake.close();
      }
    }
  }
}
