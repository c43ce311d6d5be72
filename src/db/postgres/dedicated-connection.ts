/**
 * One PostgreSQL connection kept open beside the pool, for session state a
 * pooled connection would lose when it is handed to other queries or
 * recycled: LISTEN registrations (notification bus) and session advisory
 * locks (advisory locks).
 *
 * Design note. When the connection breaks (server restart, network,
 * `pg_terminate_backend`), `client` becomes undefined at once and a new
 * connection is tried after a back-off (250 ms doubling to 10 s, reset by a
 * success); `generation` counts successful connections, so a holder of
 * session state can tell that its session — and the state — is gone.
 * TCP keep-alive makes a vanished server (or host) show up as a broken
 * connection instead of a silent one. Users must tolerate `client` being
 * undefined: the bus then relies on polls, the locks on idempotent work.
 * Its users share the one client, so they send statements through `query`,
 * which runs them one after another: pg 8 queues a statement sent while
 * another runs (deprecated, with a warning) and pg 9 will refuse it.
 */
import type pg from "pg";
import type { Logger } from "../../logging/logger.js";
import { loadPg } from "./postgres-database.js";

const FIRST_RETRY_MS = 250;
const MAX_RETRY_MS = 10_000;
const CONNECT_TIMEOUT_MS = 10_000;

export interface DedicatedConnectionOptions {
  readonly url: string;
  /** Shown in `pg_stat_activity.application_name`. */
  readonly applicationName: string;
  readonly logger: Logger;
  /** Runs on each new connection before it is offered as `client` (e.g. LISTEN). */
  readonly onConnect?: (client: pg.Client) => Promise<void>;
}

/** A self-healing dedicated connection; see the design note above. */
export class DedicatedConnection {
  #client: pg.Client | undefined;
  #generation = 0;
  #retryMs = FIRST_RETRY_MS;
  #timer: NodeJS.Timeout | undefined;
  #state: "new" | "running" | "stopped" = "new";
  #started?: Promise<void>;
  /** Clients already given up on, so their late `error`/`end` events are ignored. */
  readonly #dead = new WeakSet<pg.Client>();
  /** Per client, the end of its last statement sent through `query`. */
  readonly #last = new WeakMap<pg.Client, Promise<unknown>>();

  constructor(private readonly options: DedicatedConnectionOptions) {}

  /** The live connection, or undefined while disconnected. */
  get client(): pg.Client | undefined {
    return this.#client;
  }

  /** How many connections have been made; changes when the session is replaced. */
  get generation(): number {
    return this.#generation;
  }

  /**
   * Runs a statement on `client` (this connection's, possibly already lost)
   * once the statements sent before it have finished, whatever their outcome.
   */
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(
    client: pg.Client,
    text: string,
    values?: unknown[],
  ): Promise<pg.QueryResult<R>> {
    const previous = this.#last.get(client) ?? Promise.resolve();
    const result = previous.then(() => client.query<R>(text, values));
    this.#last.set(
      client,
      result.catch(() => {}),
    );
    return result;
  }

  /** Makes the first connection attempt (retried in the background if it fails). Idempotent. */
  start(): Promise<void> {
    this.#started ??= (async () => {
      if (this.#state !== "new") return;
      this.#state = "running";
      await this.#connect();
    })();
    return this.#started;
  }

  /** Closes the connection and stops reconnecting. Idempotent. */
  async stop(): Promise<void> {
    this.#state = "stopped";
    clearTimeout(this.#timer);
    const client = this.#client;
    this.#client = undefined;
    if (client && !this.#dead.has(client)) {
      this.#dead.add(client);
      await client.end().catch(() => {});
    }
  }

  /** Drops the current session (its state with it) and reconnects: for state that could not be cleaned up. */
  recycle(client: pg.Client): void {
    this.#lost(client, new Error("session recycled"));
  }

  async #connect(): Promise<void> {
    const driver = await loadPg();
    const client = new driver.Client({
      connectionString: this.options.url,
      application_name: this.options.applicationName,
      keepAlive: true,
      connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
    });
    client.on("error", (error) => this.#lost(client, error));
    client.on("end", () => this.#lost(client, new Error("connection ended")));
    try {
      await client.connect();
      await this.options.onConnect?.(client);
    } catch (error) {
      this.#lost(client, error);
      return;
    }
    if (this.#state !== "running" || this.#dead.has(client)) {
      this.#dead.add(client);
      await client.end().catch(() => {});
      return;
    }
    if (this.#generation > 0) {
      this.options.logger.info({ connection: this.options.applicationName }, "reconnected");
    }
    this.#client = client;
    this.#generation += 1;
    this.#retryMs = FIRST_RETRY_MS;
  }

  /** Forgets a broken client and schedules the next attempt (once per client). */
  #lost(client: pg.Client, error: unknown): void {
    if (this.#dead.has(client)) return;
    this.#dead.add(client);
    if (this.#client === client) this.#client = undefined;
    client.end().catch(() => {});
    if (this.#state !== "running") return;
    this.options.logger.warn(
      { err: error, connection: this.options.applicationName, retry_ms: this.#retryMs },
      "dedicated database connection lost; reconnecting",
    );
    this.#timer = setTimeout(() => void this.#connect(), this.#retryMs);
    this.#timer.unref();
    this.#retryMs = Math.min(this.#retryMs * 2, MAX_RETRY_MS);
  }
}
