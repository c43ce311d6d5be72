/**
 * Per-user upload limits (docs/media.md "Upload limits"): the largest file
 * (`max_upload_size`, per-user overridable) and Synapse's
 * `media_upload_limits` windows, with `media_upload_limit_overrides`
 * (first matching `user_glob` wins).
 *
 * Design note. An upload reserves its bytes before they are stored: the
 * declared Content-Length up front (refused at once, before a byte is read,
 * when it does not fit), or — without one — GROW_STEP at a time as the body
 * streams (the meter holds the body back while a step is granted and fails
 * the upload the moment a step does not fit). Reserving is one atomic
 * check-and-insert per user across processes (UploadQuotaRepository), so
 * uploads racing one quota land at most the allowed bytes. The reservation
 * is deleted in the transaction that stores the media row, or when the
 * upload fails. A process renews the expiry of the reservations it holds
 * every LEASE_MS / 3; a crashed process's stop counting after LEASE_MS,
 * and the same timer removes them (never the upload's path: an upload
 * with a quota costs one statement before its body and one `DELETE` by
 * primary key in its row's transaction).
 *
 * A user with no window pays nothing: no reservation, no query.
 */
import { randomUUID } from "node:crypto";
import type { Db } from "../db/database.js";
import { MatrixError } from "../domain/matrix-error.js";
import { compileUserGlob } from "../identifiers/user-glob.js";
import type {
  QuotaWindow,
  UploadQuotaRepository,
} from "../repositories/upload-quota-repository.js";

/** One `media_upload_limits` entry, parsed. */
export interface UploadWindow {
  readonly periodMs: number;
  readonly maxBytes: number;
}

/** The limits that apply to one user. */
export interface UserUploadLimits {
  readonly maxUploadSize: number;
  /** Empty: no quota. */
  readonly windows: readonly UploadWindow[];
  /** The `user_glob` of the override that applied; null: the global limits. */
  readonly override: string | null;
}

export interface UploadLimitSettings {
  readonly maxUploadSize: number;
  readonly windows: readonly UploadWindow[];
  readonly overrides: readonly {
    readonly userGlob: string;
    /** undefined: the global windows; null or []: none. */
    readonly windows?: readonly UploadWindow[] | null;
    /** undefined: the global `max_upload_size`. */
    readonly maxUploadSize?: number;
  }[];
  /** `info_uri` of 403 M_USER_LIMIT_EXCEEDED. */
  readonly infoUri: string;
}

/** What `GET /_mxcd/admin/v1/users/{userId}/media_usage` reports. */
export interface UploadUsage {
  readonly limits: UserUploadLimits;
  readonly windows: readonly { window: UploadWindow; used: number; remaining: number }[];
  readonly reservedBytes: number;
  readonly reservations: number;
}

/** The slice of the logger the service uses (pino's Logger fits). */
export interface QuotaLogger {
  warn(fields: object, message: string): void;
}

/** How long a reservation counts without its process renewing it. */
export const LEASE_MS = 5 * 60_000;
/** Bytes reserved at a time for a body without a Content-Length. */
export const GROW_STEP = 1024 * 1024;

export class UploadQuotaService {
  readonly #owner = randomUUID();
  /** Reservations of this process still streaming; bounded by the uploads in flight. */
  readonly #live = new Set<string>();
  readonly #overrides: readonly {
    matches: (userId: string) => boolean;
    limits: UserUploadLimits;
  }[];
  readonly #global: UserUploadLimits;
  #timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly settings: UploadLimitSettings,
    private readonly repository: UploadQuotaRepository,
    private readonly logger: QuotaLogger,
    private readonly now: () => number = Date.now,
  ) {
    this.#global = {
      maxUploadSize: settings.maxUploadSize,
      windows: settings.windows,
      override: null,
    };
    this.#overrides = settings.overrides.map((o) => ({
      matches: compileUserGlob(o.userGlob),
      limits: {
        maxUploadSize: o.maxUploadSize ?? settings.maxUploadSize,
        windows: o.windows === undefined ? settings.windows : (o.windows ?? []),
        override: o.userGlob,
      },
    }));
  }

  /** The limits of `userId`: the first matching override's, else the global ones. */
  limitsFor(userId: string): UserUploadLimits {
    for (const o of this.#overrides) if (o.matches(userId)) return o.limits;
    return this.#global;
  }

  /**
   * `m.upload.size` for `userId`: their largest file, lowered to their
   * smallest window (a larger file could never fit). Not the budget left,
   * which changes with every upload while clients cache this answer.
   */
  reportedUploadSize(userId: string): number {
    const limits = this.limitsFor(userId);
    return Math.min(limits.maxUploadSize, ...limits.windows.map((w) => w.maxBytes));
  }

  /**
   * Reserves room for an upload of `declared` bytes (undefined: unknown);
   * undefined when the user has no window. Throws 403 M_USER_LIMIT_EXCEEDED
   * when the declared length (or, unknown, any byte at all for a window of
   * 0) does not fit.
   */
  async reserve(limits: UserUploadLimits, userId: string, declared: number | undefined) {
    if (limits.windows.length === 0) return undefined;
    // A window of 0 bytes: nothing may be uploaded, an empty file included.
    if (limits.windows.some((w) => w.maxBytes === 0)) throw this.exceeded();
    const reservation = new QuotaReservation(this, randomUUID(), userId, limits);
    const wanted = declared ?? Math.min(GROW_STEP, limits.maxUploadSize);
    await reservation.ensure(declared ?? 0, wanted);
    return reservation;
  }

  /** A user's usage per window and their live reservations. */
  async usage(userId: string): Promise<UploadUsage> {
    const limits = this.limitsFor(userId);
    const now = this.now();
    const usage = await this.repository.usage(
      userId,
      limits.windows.map((w) => now - w.periodMs),
      now,
    );
    return {
      limits,
      windows: limits.windows.map((window, i) => ({
        window,
        used: usage.used[i]!,
        remaining: Math.max(0, window.maxBytes - usage.used[i]! - usage.reservedBytes),
      })),
      reservedBytes: usage.reservedBytes,
      reservations: usage.reservations,
    };
  }

  /** Starts renewing this process's reservations. Idempotent. */
  start(): void {
    if (this.#timer) return;
    this.#timer = setInterval(() => void this.renew(), LEASE_MS / 3);
    this.#timer.unref();
  }

  /** Stops renewing. Idempotent. */
  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** @internal QuotaReservation's way to the repository. */
  async grant(
    reservation: QuotaReservation,
    windows: readonly UploadWindow[],
    atLeast: number,
    atMost: number,
  ): Promise<number> {
    const now = this.now();
    const granted = await this.repository.reserve({
      reservationId: reservation.id,
      userId: reservation.userId,
      owner: this.#owner,
      windows: windows.map(
        (w): QuotaWindow => ({ sinceTs: now - w.periodMs, maxBytes: w.maxBytes }),
      ),
      atLeast,
      atMost,
      now,
      expiresTs: now + LEASE_MS,
    });
    if (granted === undefined) throw this.exceeded();
    this.#live.add(reservation.id);
    return granted;
  }

  /** @internal Drops a reservation (in `db`, the upload's transaction, when given). */
  async drop(reservationId: string, db?: Db): Promise<void> {
    await this.repository.drop(reservationId, db);
    this.#live.delete(reservationId);
  }

  exceeded(): MatrixError {
    return new MatrixError("M_USER_LIMIT_EXCEEDED", "Media upload limit exceeded", 403, {
      info_uri: this.settings.infoUri,
    });
  }

  /**
   * The timer's work: pushes the expiry of this process's live reservations
   * to now + LEASE_MS, and removes every reservation whose lease has ended
   * (a crashed process's; they already count no more). Never throws: a
   * failure is logged and retried at the next tick (the lease outlasts two).
   */
  async renew(): Promise<void> {
    const now = this.now();
    try {
      if (this.#live.size > 0) await this.repository.renew(this.#owner, now + LEASE_MS);
      await this.repository.dropExpired(now);
    } catch (error) {
      // The message only: a driver error may quote the statement's parameters (user ids).
      this.logger.warn(
        { reservations: this.#live.size, error: (error as Error).message },
        "upload quota: renewing the reservations failed; retrying at the next tick",
      );
    }
  }
}

/** The room one upload holds against its user's windows. */
export class QuotaReservation {
  #granted = 0;

  constructor(
    private readonly service: UploadQuotaService,
    readonly id: string,
    readonly userId: string,
    private readonly limits: UserUploadLimits,
  ) {}

  /** Bytes the upload may hold without asking again. */
  get granted(): number {
    return this.#granted;
  }

  /**
   * Makes the reservation at least `total` bytes (asking for up to `wanted`);
   * resolves to the new grant, or throws 403 M_USER_LIMIT_EXCEEDED.
   */
  async ensure(total: number, wanted = total + GROW_STEP): Promise<number> {
    if (total <= this.#granted && this.#granted > 0) return this.#granted;
    // Never more than the largest file: room held beyond it would only block other uploads.
    const atMost = Math.max(total, Math.min(wanted, this.limits.maxUploadSize));
    this.#granted = await this.service.grant(this, this.limits.windows, total, atMost);
    return this.#granted;
  }

  /** Drops the reservation in the transaction that stores the upload's row. */
  settle(tx: Db): Promise<void> {
    return this.service.drop(this.id, tx);
  }

  /** Drops the reservation: the upload failed. Never throws. */
  async release(): Promise<void> {
    await this.service.drop(this.id).catch(() => {});
  }
}
