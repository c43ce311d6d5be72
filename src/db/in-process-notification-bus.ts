/**
 * The notification bus of a single process (SQLite, tests): publishing calls
 * the subscribers directly. Also the local half of the PostgreSQL bus.
 */
import type { Channel, NotificationBus, NotificationListener } from "./notification-bus.js";

/** A NotificationBus that reaches this process only. */
export class InProcessNotificationBus implements NotificationBus {
  readonly #listeners = new Map<Channel, Set<NotificationListener>>();

  /** Calls every current subscriber of `channel`, synchronously. */
  publish(channel: Channel, payload: string): void {
    const listeners = this.#listeners.get(channel);
    if (!listeners) return;
    // A copy: a listener may unsubscribe itself (or others) while we iterate.
    for (const listener of [...listeners]) listener(payload);
  }

  subscribe(channel: Channel, listener: NotificationListener): () => void {
    let listeners = this.#listeners.get(channel);
    if (!listeners) {
      listeners = new Set();
      this.#listeners.set(channel, listeners);
    }
    // Wrapped, so subscribing the same function twice gives two subscriptions.
    const entry: NotificationListener = (payload) => listener(payload);
    listeners.add(entry);
    return () => {
      listeners.delete(entry);
    };
  }

  async start(): Promise<void> {}

  async stop(): Promise<void> {}
}
