/**
 * The notification bus over PostgreSQL LISTEN/NOTIFY, for several mxcd
 * processes on one database (see notification-bus.ts for the contract).
 *
 * Design note.
 * - One dedicated connection per process (not a pooled one, which would be
 *   recycled and lose its LISTENs) listens on every mxcd channel and also
 *   sends the NOTIFYs. It reconnects with back-off when it breaks; while it
 *   is down nothing is sent or received, and the waiters' polls keep every
 *   answer right (a notification is a hint, never the data).
 * - `publish` delivers to this process's subscribers first, synchronously,
 *   then sends `pg_notify` on its own (autocommit) statement, after the
 *   NOTIFYs sent before it (one statement at a time on the connection, in
 *   publish order). Publishers call
 *   it after their commit, so a receiver that re-reads sees the change:
 *   PostgreSQL delivers a NOTIFY only after the sending transaction commits,
 *   and this one starts after the announced commit finished.
 * - Payloads carry this process's random sender id (`<sender>:<payload>`),
 *   so the echo of our own NOTIFY — already delivered locally — is dropped.
 * - A process that dies loses only the notifications it had not sent yet;
 *   PostgreSQL drops a dead session's LISTENs with the session.
 */
import { randomBytes } from "node:crypto";
import type pg from "pg";
import type { Logger } from "../../logging/logger.js";
import { CHANNELS, type Channel } from "../channels.js";
import { InProcessNotificationBus } from "../in-process-notification-bus.js";
import type { NotificationBus, NotificationListener } from "../notification-bus.js";
import { DedicatedConnection } from "./dedicated-connection.js";

/** A NotificationBus reaching every process that listens on the same database. */
export class PostgresNotificationBus implements NotificationBus {
  readonly #local = new InProcessNotificationBus();
  readonly #sender = randomBytes(6).toString("hex");
  readonly #connection: DedicatedConnection;
  /** NOTIFYs on their way, awaited by stop(). */
  readonly #sending = new Set<Promise<void>>();
  /** Told after each (re)connection's LISTENs (see NotificationBus.onListening). */
  readonly #onListening = new Set<() => void>();

  constructor(
    url: string,
    private readonly logger: Logger,
  ) {
    this.#connection = new DedicatedConnection({
      url,
      applicationName: "mxcd-notifications",
      logger,
      onConnect: (client) => this.#listen(client),
    });
  }

  publish(channel: Channel, payload: string): void {
    this.#local.publish(channel, payload);
    const client = this.#connection.client;
    if (!client) return; // Disconnected: the other processes' polls will see the change.
    const sent: Promise<void> = this.#connection
      .query(client, "select pg_notify($1, $2)", [channel, `${this.#sender}:${payload}`])
      .then(
        () => {},
        (error: unknown) => {
          this.logger.debug({ err: error, channel }, "could not send a notification");
        },
      )
      .finally(() => this.#sending.delete(sent));
    this.#sending.add(sent);
  }

  subscribe(channel: Channel, listener: NotificationListener): () => void {
    return this.#local.subscribe(channel, listener);
  }

  onListening(listener: () => void): () => void {
    const entry = () => listener();
    this.#onListening.add(entry);
    return () => {
      this.#onListening.delete(entry);
    };
  }

  start(): Promise<void> {
    return this.#connection.start();
  }

  async stop(): Promise<void> {
    await Promise.all(this.#sending);
    await this.#connection.stop();
  }

  /** Subscribes a new connection to every channel (fixed names, so no quoting needed). */
  async #listen(client: pg.Client): Promise<void> {
    client.on("notification", (message) => this.#receive(message));
    for (const channel of CHANNELS) await client.query(`LISTEN ${channel}`);
    // Listening again: whatever was sent while we were not is lost.
    for (const listener of [...this.#onListening]) listener();
  }

  /** Hands another process's notification to our subscribers; drops our own echoes. */
  #receive(message: pg.Notification): void {
    const channel = CHANNELS.find((name) => name === message.channel);
    const text = message.payload;
    if (!channel || text === undefined) return;
    const cut = text.indexOf(":");
    if (cut < 0 || text.slice(0, cut) === this.#sender) return;
    this.#local.publish(channel, text.slice(cut + 1));
  }
}
