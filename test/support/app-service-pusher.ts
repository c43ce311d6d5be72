/**
 * Pushes room events to an application service the way Synapse does,
 * written from the Matrix spec (application-service API "Pushing events") and
 * shared/reference/attached-mode.md §3.2 — not from mxcd's code:
 *
 * - transaction ids are integers from one growing sequence (shared by every
 *   AS on a real homeserver, so they grow with gaps);
 * - at most 100 events per transaction, oldest first;
 * - one transaction in flight at a time;
 * - a failed transaction (non-2xx or a broken connection) is retried with the
 *   same id and exactly the same events, before any newer one is sent;
 * - `Authorization: Bearer <hs_token>`, plus `?access_token=` only when told
 *   to act like `use_appservice_legacy_authorization`.
 */

/** Synapse's per-transaction event cap. */
export const EVENTS_PER_TRANSACTION = 100;

/** One transaction as sent (kept for replays). */
export interface PushedTransaction {
  readonly txnId: string;
  readonly events: readonly unknown[];
}

export interface PusherOptions {
  /** The AS's base URL (the registration's `url`). */
  readonly url: string;
  readonly hsToken: string;
  /** Also send the token as `?access_token=` (legacy authorization). */
  readonly legacyQueryToken?: boolean;
  /** Attempts per transaction before `flush` gives up (Synapse retries forever). */
  readonly maxAttempts?: number;
  /** The first transaction id. */
  readonly firstTxnId?: number;
}

export class AppServicePusher {
  readonly #queue: unknown[] = [];
  #nextTxnId: number;
  #inFlight: Promise<void> = Promise.resolve();
  /** Every transaction sent, oldest first (each once, whatever its attempts). */
  readonly sent: PushedTransaction[] = [];
  /** Attempts made, including retries. */
  attempts = 0;

  constructor(private readonly options: PusherOptions) {
    this.#nextTxnId = options.firstTxnId ?? 1;
  }

  /** Queues events, as the homeserver persisting them would. */
  enqueue(...events: unknown[]): void {
    this.#queue.push(...events);
  }

  /** Sends every queued event, ≤ 100 per transaction, one transaction at a time. */
  flush(): Promise<void> {
    const run = this.#inFlight.then(async () => {
      while (this.#queue.length > 0) {
        const events = this.#queue.splice(0, EVENTS_PER_TRANSACTION);
        // Gaps, as from Synapse's sequence shared by every AS.
        const txnId = String(this.#nextTxnId);
        this.#nextTxnId += 1 + (this.sent.length % 3);
        const txn = { txnId, events };
        this.sent.push(txn);
        await this.#deliver(txn);
      }
    });
    this.#inFlight = run.catch(() => {});
    return run;
  }

  /** Sends an earlier transaction again, same id and events (a lost 200 OK). */
  async replay(txn: PushedTransaction): Promise<number> {
    return (await this.put(txn)).status;
  }

  /** One PUT of a transaction; the raw response. */
  async put(txn: PushedTransaction, token = this.options.hsToken): Promise<Response> {
    const url = new URL(
      `/_matrix/app/v1/transactions/${encodeURIComponent(txn.txnId)}`,
      this.options.url,
    );
    if (this.options.legacyQueryToken) url.searchParams.set("access_token", token);
    this.attempts++;
    const response = await fetch(url, {
      method: "PUT",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify({ events: txn.events }),
    });
    await response.arrayBuffer();
    return response;
  }

  async #deliver(txn: PushedTransaction): Promise<void> {
    const maxAttempts = this.options.maxAttempts ?? 5;
    let last = "";
    for (let attempt = 1; attempt <= maxAttempts; attempt++) {
      try {
        const response = await this.put(txn);
        if (response.ok) return;
        last = `HTTP ${response.status}`;
      } catch (error) {
        last = String(error);
      }
    }
    throw new Error(`transaction ${txn.txnId} failed ${maxAttempts} times: ${last}`);
  }
}
