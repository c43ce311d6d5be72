/**
 * Single flight across processes: a piece of work whose result ends up in
 * the database (a remote item cached, a thumbnail stored) runs in one
 * process at a time, and the others wait for its result instead of doing it
 * again. Combine it with an in-process SingleFlight, so each process asks
 * at most once per item.
 *
 * Design note. `run` loops: (1) arm a wake-up on the channel, (2) try the
 * item's advisory lock; holding it, look for the result once more (another
 * process may have finished just before) and else make it; (3) not holding
 * it, look for the result and, if absent, sleep until the holder announces
 * the end of its work on the channel, or one poll interval passes, then go
 * round again. The holder releases the lock *before* it announces, so a
 * woken waiter finds either the result or a free lock — when the holder
 * failed, the next waiter takes over and tries itself. When the holder
 * dies, PostgreSQL releases its lock and the waiters notice at their next
 * poll. The work must tolerate running twice (see advisory-locks.ts): a
 * lock can be lost with its connection.
 */
import type { AdvisoryLocks, Lease } from "../db/advisory-locks.js";
import type { Channel, NotificationBus } from "../db/notification-bus.js";
import { Wakeup } from "./wakeup.js";

/** How to find a finished result and how to make one. */
export interface FlightWork<T> {
  /** The result, if some process already made it (read from the database); else undefined. */
  find(): Promise<T | undefined>;
  /** Makes the result; called only under the lock, after `find` found nothing. */
  make(): Promise<T>;
}

/** Runs work once across processes; see the design note above. */
export class CrossProcessFlight {
  #waiting = 0;

  constructor(
    private readonly locks: AdvisoryLocks,
    private readonly bus: NotificationBus,
    /** Where holders announce that their work ended; payload: the work's name. */
    private readonly channel: Channel,
    /** How often a waiter re-checks without being woken. */
    private readonly pollMs: number,
  ) {}

  /** How many callers are waiting for work running elsewhere (a metric). */
  get waiting(): number {
    return this.#waiting;
  }

  /**
   * The result of the work named `name`: found, made here, or made by the
   * process that holds its lock. Rejects when making it here fails.
   */
  async run<T>(name: string, work: FlightWork<T>): Promise<T> {
    for (;;) {
      const wake = new Wakeup((fn) =>
        this.bus.subscribe(this.channel, (payload) => payload === name && fn()),
      );
      try {
        const lease = await this.locks.tryAcquire(`${this.channel}:${name}`);
        if (lease) return await this.#holding(lease, name, work);
        const found = await work.find();
        if (found !== undefined) return found;
        this.#waiting += 1;
        await wake.wait(this.pollMs).finally(() => {
          this.#waiting -= 1;
        });
      } finally {
        wake.close();
      }
    }
  }

  /** Finds or makes the result under the lock; releases, then announces the end. */
  async #holding<T>(lease: Lease, name: string, work: FlightWork<T>): Promise<T> {
    try {
      return (await work.find()) ?? (await work.make());
    } finally {
      await lease.release();
      this.bus.publish(this.channel, name);
    }
  }
}
