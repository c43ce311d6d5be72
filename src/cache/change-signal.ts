/**
 * The delivery half every cache-invalidation signal shares (media-changes.ts,
 * token-changes.ts): payloads on one notification-bus channel, decoded into
 * changes and handed to every subscriber with where they came from, and
 * "all" when the PostgreSQL listener (re)connects, since changes may have
 * been missed meanwhile. What a payload says is the caller's business.
 */
import type { Channel, NotificationBus } from "../db/notification-bus.js";

/** Where a change came from: this process, or another one through the bus. */
export type ChangeSource = "local" | "remote";

export type ChangeListener<C> = (change: C, source: ChangeSource) => void;

export class ChangeSignal<C> {
  readonly #listeners = new Set<ChangeListener<C>>();
  /** True while our own payload is being delivered here (for the `source`). */
  #publishing = false;

  constructor(
    private readonly bus: NotificationBus,
    private readonly channel: Channel,
    /** The changes a payload carries; an unreadable one must decode to "all". */
    decode: (payload: string) => readonly C[],
    all: C,
  ) {
    bus.subscribe(channel, (payload) => {
      const source = this.#publishing ? "local" : "remote";
      for (const change of decode(payload)) this.#deliver(change, source);
    });
    bus.onListening?.(() => this.#deliver(all, "remote"));
  }

  /** Sends a payload: delivered here at once, to the other processes shortly after. */
  send(payload: string): void {
    this.#publishing = true;
    try {
      this.bus.publish(this.channel, payload);
    } finally {
      this.#publishing = false;
    }
  }

  /** Calls `listener` with every change from now on; returns the unsubscribe function. */
  subscribe(listener: ChangeListener<C>): () => void {
    const entry: ChangeListener<C> = (change, source) => listener(change, source);
    this.#listeners.add(entry);
    return () => {
      this.#listeners.delete(entry);
    };
  }

  #deliver(change: C, source: ChangeSource): void {
    for (const listener of [...this.#listeners]) listener(change, source);
  }
}
