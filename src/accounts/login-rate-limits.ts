/**
 * Synapse's three login rate limits (`rc_login`), applied in Synapse's
 * order (synapse/rest/client/login.py and handlers/auth.py):
 *
 * 1. `address`: every login request, by client IP, before anything else;
 * 2. `failed_attempts`: by user id — checked (not counted) before the
 *    password check, counted when the password is wrong;
 * 3. `account`: by user id, counted for each successful password check,
 *    before a token is issued.
 *
 * A refusal is 429 M_LIMIT_EXCEEDED with `retry_after_ms`. The limits are
 * per process, as Synapse's are per worker.
 */
import { MatrixError } from "../domain/matrix-error.js";
import { RateLimiter, type RateLimitSettings } from "../util/rate-limiter.js";

export type LoginLimit = "address" | "account" | "failed_attempts";

export type LoginRateLimitSettings = Readonly<Record<LoginLimit, RateLimitSettings>>;

/** Keys each limiter tracks at most (about 100 bytes each). */
const MAX_KEYS_PER_LIMIT = 100_000;

export class LoginRateLimits {
  readonly #limiters: Readonly<Record<LoginLimit, RateLimiter>>;
  readonly #refused: Record<LoginLimit, number> = { address: 0, account: 0, failed_attempts: 0 };

  constructor(settings: LoginRateLimitSettings, now: () => number = Date.now) {
    const limiter = (limit: LoginLimit) =>
      new RateLimiter(settings[limit], MAX_KEYS_PER_LIMIT, now);
    this.#limiters = {
      address: limiter("address"),
      account: limiter("account"),
      failed_attempts: limiter("failed_attempts"),
    };
  }

  /** Requests refused by each limit since start, for metrics. */
  get refused(): Readonly<Record<LoginLimit, number>> {
    return { ...this.#refused };
  }

  /** Counts a login request from `address`; 429 when over `rc_login.address`. */
  checkAddress(address: string): void {
    this.#enforce("address", address, true);
  }

  /** 429 when `userId` has too many recent failures (does not count). */
  checkFailedAttempts(userId: string): void {
    this.#enforce("failed_attempts", userId.toLowerCase(), false);
  }

  /** Counts a wrong password for `userId`. */
  recordFailure(userId: string): void {
    this.#limiters.failed_attempts.check(userId.toLowerCase());
  }

  /** Counts a successful password check; 429 when over `rc_login.account`. */
  checkAccount(userId: string): void {
    this.#enforce("account", userId.toLowerCase(), true);
  }

  #enforce(limit: LoginLimit, key: string, record: boolean): void {
    const decision = this.#limiters[limit].check(key, record);
    if (decision.allowed) return;
    this.#refused[limit]++;
    throw new MatrixError("M_LIMIT_EXCEEDED", "Too Many Requests", 429, {
      retry_after_ms: decision.retryAfterMs,
    });
  }
}
