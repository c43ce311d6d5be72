/**
 * The quarantine change feed as consumers see it (Synapse's
 * `GET /_synapse/admin/v1/media/quarantine_changes`, made exact), with the
 * `limit` and long-poll `timeout` extensions: a request at the end of the
 * feed returns as soon as a new record commits or the timeout passes.
 *
 * Commits announce themselves with `FeedSignal.notify` on the notification
 * bus: waiters in this process wake at once, waiters in the other processes
 * sharing the database shortly after (PostgreSQL NOTIFY). A waiter also
 * re-reads the position every `pollMs`, in case a notification was lost.
 */
import type { NotificationBus } from "../db/notification-bus.js";
import { MatrixError } from "../domain/matrix-error.js";
import type {
  FeedRecord,
  QuarantineFeedRepository,
} from "../repositories/quarantine-feed-repository.js";
import { Wakeup } from "../util/wakeup.js";

const CHANNEL = "mxcd_feed";

/** Wakes long-polling readers, in every process, when feed records commit. */
export class FeedSignal {
  readonly #listeners = new Set<() => void>();

  /** `bus`: the app's one notification bus (a private one would wake nobody else). */
  constructor(private readonly bus: NotificationBus) {
    bus.subscribe(CHANNEL, () => {
      for (const listener of [...this.#listeners]) listener();
    });
  }

  /** Announces committed records; call after the commit. */
  notify(): void {
    this.bus.publish(CHANNEL, "");
  }

  /** A wake-up for the next notify (or the abort), armed from now on. */
  arm(signal?: AbortSignal): Wakeup {
    return new Wakeup((wake) => {
      this.#listeners.add(wake);
      return () => this.#listeners.delete(wake);
    }, signal);
  }
}

export interface FeedPage {
  readonly nextBatch: number;
  readonly records: readonly FeedRecord[];
}

export class QuarantineFeedService {
  #waiting = 0;

  constructor(
    private readonly repository: QuarantineFeedRepository,
    private readonly signal: FeedSignal,
    /** `notification_poll_interval`: the re-read period when no notification came. */
    private readonly pollMs: number,
  ) {}

  /** How many long-polls are waiting for a record (a metric). */
  get waiting(): number {
    return this.#waiting;
  }

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
    // Armed before each position read, so a commit right after it still wakes us.
    let wake = this.signal.arm(abort);
    let position: number;
    try {
      position = await this.repository.position();
      if (from > position) {
        throw new MatrixError(
          "M_INVALID_PARAM",
          "The `from` token is considered invalid because it includes stream positions greater than the furthest persisted position. If you've modified the token, you can try paginating from the beginning again.",
        );
      }
      while (position <= from && Date.now() < deadline && !abort?.aborted) {
        this.#waiting += 1;
        await wake.wait(Math.min(this.pollMs, deadline - Date.now())).finally(() => {
          this.#waiting -= 1;
        });
        wake.close();
        wake = this.signal.arm(abort);
        position = await this.repository.position();
      }
    } finally {
      wake.close();
    }
    const records = await this.repository.page(from, position, limit);
    const last = records[records.length - 1];
    return { nextBatch: last ? last.streamId : position, records };
  }
}
