/**
 * The notification seam: "something changed" signals between the mxcd
 * processes that share one database (DESIGN.md "Deployment shapes",
 * docs/deployment.md). `createNotificationBus` is the one place that picks
 * the backend: PostgreSQL LISTEN/NOTIFY, or an in-process bus for SQLite
 * (one process).
 *
 * Design note. A notification is only a hint that the database may have
 * changed. Every receiver re-reads what it is waiting for, and every waiter
 * also re-checks on a timer (`notification_poll_interval`). So a
 * notification may be lost (a process died between its commit and its
 * publish; the listening connection was down), duplicated or reordered
 * without any answer becoming wrong — only later, by at most one poll
 * interval. The one rule for publishers: publish *after* the commit whose
 * effect you announce, so a receiver that re-reads sees it.
 */
import type { DatabaseConfig } from "../config/config-schema.js";
import type { Logger } from "../logging/logger.js";
import type { Channel } from "./channels.js";
import { InProcessNotificationBus } from "./in-process-notification-bus.js";
import { PostgresNotificationBus } from "./postgres/postgres-notification-bus.js";

export type { Channel } from "./channels.js";

/** Receives a payload; must not throw. */
export type NotificationListener = (payload: string) => void;

export interface NotificationBus {
  /**
   * Delivers `payload` (a short string: PostgreSQL allows under 8000 bytes)
   * to every subscriber of `channel`: in this process at once, before
   * returning; in the other processes shortly after. Never throws: a failure
   * to reach the others is logged and left to their polls.
   */
  publish(channel: Channel, payload: string): void;
  /**
   * Calls `listener` with every payload published on `channel` by any
   * process from now on (at least once, in no guaranteed order); returns
   * the function that unsubscribes it. Works before `start()`.
   */
  subscribe(channel: Channel, listener: NotificationListener): () => void;
  /**
   * Calls `listener` each time this process (re)starts listening to the
   * other processes (every connection of the PostgreSQL bus): whatever was
   * published while it was not listening is lost, so caches forget
   * everything. Absent on the in-process bus, which never misses anything.
   */
  onListening?(listener: () => void): () => void;
  /** Starts receiving from other processes; resolves once listening (or retrying). Idempotent. */
  start(): Promise<void>;
  /** Waits for notifications being sent, then disconnects. Idempotent. */
  stop(): Promise<void>;
}

/** The bus for the configured database. Cheap: connects in `start()`. */
export function createNotificationBus(config: DatabaseConfig, logger: Logger): NotificationBus {
  switch (config.engine) {
    case "sqlite":
      return new InProcessNotificationBus();
    case "postgres":
      return new PostgresNotificationBus(config.url, logger);
    default: {
      const unknown: never = config;
      throw new Error(`unknown database engine ${JSON.stringify(unknown)}`);
    }
  }
}
