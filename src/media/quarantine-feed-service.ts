/**
 * The quarantine change feed as consumers see it (Synapse's
 * `GET /_synapse/admin/v1/media/quarantine_changes`, made exact), with the
 * `limit` and long-poll `timeout` extensions: a request at the end of the
 * feed returns as soon as a new record commits or the timeout passes.
 *
 * Commits in this process wake waiters at once (`FeedSignal.notify`); a
 * waiter also re-reads the position every `pollMs`, so commits by other
 * processes are seen within that interval.
 */
import { EventEmitter } from "node:events";
import { MatrixError } from "../http/matrix-error.js";
import type {
  FeedRecord,
  QuarantineFeedRepository,
} from "../repositories/quarantine-feed-repository.js";

/** Wakes long-polling readers when feed records commit. */
export class FeedSignal {
  readonly #events = new EventEmitter();
  constructor() {
    this.#events.setMaxListeners(0);
  }
  notify(): void {
    this.#events.emit("commit");
  }
  /** Resolves on the next notify, after `ms`, or when `signal` aborts. */
  wait(ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.#events.off("commit", done);
        signal?.removeEventListener("abort", done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.#events.once("commit", done);
      signal?.addEventListener("abort", done, { once: true });
    });
  }
}

export interface FeedPage {
  readonly nextBatch: number;
  readonly records: readonly FeedRecord[];
}

export class QuarantineFeedService {
  constructor(
    private readonly repository: QuarantineFeedRepository,
    private readonly signal: FeedSignal,
    private readonly pollMs = 500,
  ) {}

  /**
   * Records after `from` (exclusive), oldest first, at most `limit`.
   * `next_batch` is the last returned id, or the position when the page is
   * empty. A `from` beyond the position is 400 M_INVALID_PARAM.
   */
  async read(
    from: number,
    limit: number,
    timeoutMs: number,
    abort?: AbortSignal,
  ): Promise<FeedPage> {
    const deadline = Date.now() + timeoutMs;
    let position = await this.repository.position();
    if (from > position) {
      throw new MatrixError(
        "M_INVALID_PARAM",
        "The `from` token is considered invalid because it includes stream positions greater than the furthest persisted position. If you've modified the token, you can try paginating from the beginning again.",
      );
    }
    while (position <= from && Date.now() < deadline && !abort?.aborted) {
      await this.signal.wait(Math.min(this.pollMs, deadline - Date.now()), abort);
      position = await this.repository.position();
    }
    const records = await this.repository.page(from, position, limit);
    const last = records[records.length - 1];
    return { nextBatch: last ? last.streamId : position, records };
  }
}
