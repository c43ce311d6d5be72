/**
 * Uploads: plain (`POST /upload`: new id, bytes, row) and asynchronous
 * (`POST /create` reserves an id, `PUT /upload/{server}/{id}` fills it).
 *
 * Bytes stream to the blob store through an UploadMeter (size limit,
 * SHA-256 and MD5 on the fly); the store makes them visible only when complete, and
 * the row is written after the bytes, so a rejected or crashed upload never
 * leaves a row pointing at nothing nor a visible partial file. New bytes
 * whose hash matches quarantined media are stored quarantined by `system`,
 * decided in the row's own transaction (ContentGate).
 *
 * An async upload's claim (`media_length = -1` while its bytes stream) is
 * backed by an advisory lock named after the id, held for the whole PUT. The
 * lock dies with its process (PostgreSQL ends the dead process's session; on
 * SQLite the one process restarted), so a PUT that finds the row claimed but
 * gets the lock knows the claimant is gone and takes the claim over: a
 * SIGKILL mid-upload no longer leaves the id "being uploaded" forever.
 * A row deleted while its bytes stream (admin delete) makes the PUT fail
 * with 404 and remove the bytes it wrote.
 *
 * Both kinds of upload are held to the user's limits (UploadQuotaService):
 * their `max_upload_size` (413) and quota windows (403
 * M_USER_LIMIT_EXCEEDED), checked against the declared length before a
 * byte is read and against the bytes while they stream. The quota
 * reservation is dropped in the transaction that writes the row, or when
 * the upload fails.
 */
import type { Readable } from "node:stream";
import type { AdvisoryLocks } from "../db/advisory-locks.js";
import type { Db } from "../db/database.js";
import { MatrixError } from "../domain/matrix-error.js";
import { newMediaId } from "../identifiers/media-id.js";
import type { MediaRepository, StoredContent } from "../repositories/media-repository.js";
import type { BlobStore } from "../storage/blob-store.js";
import { localContentKey } from "../storage/media-paths.js";
import type { RateLimitRefusals } from "../util/rate-limit-refusals.js";
import type { Md5Hashers } from "./md5-worker-pool.js";
import type { PendingUploads } from "./pending-uploads.js";
import { feedMeter, UploadMeter, UploadTooLargeError } from "./upload-meter.js";
import type {
  QuotaReservation,
  UploadQuotaService,
  UserUploadLimits,
} from "./upload-quota-service.js";

export interface UploadSettings {
  readonly serverName: string;
  readonly maxUploadSize: number;
  /** `enable_authenticated_media`: new media is served only by the authenticated endpoints. */
  readonly authenticatedMedia: boolean;
  readonly maxPendingUploads: number;
  readonly unusedExpirationMs: number;
  /** Where uploads' MD5 runs (md5-worker-pool.ts: a worker thread for large ones). */
  readonly md5: Md5Hashers;
  /** Counts `max_pending_media_uploads` refusals (`mxcd_rate_limited_total`). */
  readonly refusals: Pick<RateLimitRefusals, "count">;
}

export interface UploadRequest {
  readonly userId: string;
  readonly body: Readable;
  /** The Content-Type header as sent; absent → application/octet-stream. */
  readonly contentType: string | undefined;
  /** The Content-Length header, when sent. */
  readonly contentLength: number | undefined;
  readonly uploadName: string | null;
}

/** Called after new content is stored (thumbnail pre-generation). */
export type ContentListener = (mediaId: string, content: NewContent) => void;

/**
 * Decides, in the transaction that stores new content, whether it is
 * quarantined on arrival (QuarantineService.admitLocal).
 */
export interface ContentGate {
  admitLocal(mediaId: string, sha256: string, write: (tx: Db) => Promise<void>): Promise<boolean>;
}

/** What an upload stored; its quarantine state is the ContentGate's business. */
export type NewContent = Omit<StoredContent, "quarantinedBy">;

const DEFAULT_TYPE = "application/octet-stream";

export class UploadService {
  constructor(
    private readonly settings: UploadSettings,
    private readonly media: MediaRepository,
    private readonly store: BlobStore,
    private readonly pending: PendingUploads,
    private readonly gate: ContentGate,
    private readonly locks: Pick<AdvisoryLocks, "tryAcquire">,
    private readonly quota: Pick<UploadQuotaService, "limitsFor" | "reserve">,
    private readonly onContent: ContentListener = () => {},
    private readonly now: () => number = Date.now,
  ) {}

  /** `POST /upload`: stores the body under a new id; returns the mxc URI. */
  async upload(request: UploadRequest): Promise<string> {
    const limits = this.quota.limitsFor(request.userId);
    assertDeclaredSize(request.contentLength, limits);
    const reservation = await this.quota.reserve(limits, request.userId, request.contentLength);
    const mediaId = newMediaId();
    let content: NewContent;
    try {
      content = await this.storeBytes(mediaId, request, limits, reservation);
      try {
        await this.gate.admitLocal(mediaId, content.sha256, async (tx) => {
          await this.media.insertLocal(
            {
              ...content,
              quarantinedBy: null,
              mediaId,
              userId: request.userId,
              createdTs: this.now(),
              authenticated: this.settings.authenticatedMedia,
            },
            tx,
          );
          await reservation?.settle(tx);
        });
      } catch (error) {
        await this.store.delete(localContentKey(mediaId));
        throw error;
      }
    } catch (error) {
      await reservation?.release();
      throw error;
    }
    this.onContent(mediaId, content);
    return this.mxc(mediaId);
  }

  /** `POST /create`: reserves an id for a later upload. */
  async create(userId: string): Promise<{ contentUri: string; unusedExpiresAt: number }> {
    const now = this.now();
    const pending = await this.media.countPending(userId, now - this.settings.unusedExpirationMs);
    if (pending >= this.settings.maxPendingUploads) throw await this.pendingLimit(userId, now);
    const mediaId = newMediaId();
    await this.media.insertPending({
      mediaId,
      userId,
      createdTs: now,
      authenticated: this.settings.authenticatedMedia,
    });
    return {
      contentUri: this.mxc(mediaId),
      unusedExpiresAt: now + this.settings.unusedExpirationMs,
    };
  }

  /**
   * 429 M_LIMIT_EXCEEDED for `max_pending_media_uploads`, retry after the
   * first pending id expires (Synapse: first pending expiry − now), at least 1 ms.
   */
  private async pendingLimit(userId: string, now: number): Promise<MatrixError> {
    this.settings.refusals.count("max_pending_media_uploads");
    const expiry = this.settings.unusedExpirationMs;
    const oldest = await this.media.oldestPendingCreatedTs(userId, now - expiry);
    const retryAfterMs = Math.max(1, (oldest ?? now) + expiry - now);
    return new MatrixError("M_LIMIT_EXCEEDED", "Too many pending media uploads", 429, {
      retry_after_ms: retryAfterMs,
    });
  }

  /**
   * `PUT /upload/{serverName}/{mediaId}`, checked in Synapse's (and
   * Complement's) order: 404 non-local, 404 unknown, 403 not the creator,
   * 409 has content (or is being uploaded), 404 expired, 413 too large.
   * Then, after the bytes: 404 when the id was deleted meanwhile.
   */
  async uploadTo(serverName: string, mediaId: string, request: UploadRequest): Promise<void> {
    if (serverName !== this.settings.serverName) {
      throw new MatrixError("M_NOT_FOUND", "Non-local server name specified");
    }
    const row = await this.media.getLocal(mediaId);
    if (!row) throw new MatrixError("M_NOT_FOUND", "Unknown media ID");
    if (row.userId !== request.userId) {
      throw new MatrixError("M_FORBIDDEN", "You may not upload to this media ID");
    }
    if (row.mediaLength !== null || row.sha256 !== null) {
      throw new MatrixError("M_CANNOT_OVERWRITE_MEDIA", "Media ID already has content");
    }
    if (row.createdTs + this.settings.unusedExpirationMs < this.now()) {
      throw new MatrixError("M_NOT_FOUND", "Media ID has expired");
    }
    const limits = this.quota.limitsFor(request.userId);
    assertDeclaredSize(request.contentLength, limits);
    const reservation = await this.quota.reserve(limits, request.userId, request.contentLength);
    let content: NewContent;
    try {
      // Held until the row is complete or given back; see the module note.
      const lease = await this.locks.tryAcquire(uploadLockName(mediaId));
      if (!lease) throw cannotOverwrite();
      try {
        if (!(await this.media.claimPending(mediaId))) throw cannotOverwrite();
        content = await this.fillClaim(mediaId, request, limits, reservation);
      } finally {
        await lease.release();
      }
    } catch (error) {
      await reservation?.release();
      throw error;
    }
    this.pending.notify(mediaId);
    this.onContent(mediaId, content);
  }

  /**
   * Streams the bytes of a claimed id and completes its row. On failure
   * nothing is left: the bytes are removed and the claim given back, unless
   * the row turns out complete — which only another upload can have done,
   * if this one's lock vanished with its database session — whose bytes
   * then share the key and are left alone.
   */
  private async fillClaim(
    mediaId: string,
    request: UploadRequest,
    limits: UserUploadLimits,
    reservation: QuotaReservation | undefined,
  ): Promise<NewContent> {
    try {
      const content = await this.storeBytes(mediaId, request, limits, reservation);
      await this.gate.admitLocal(mediaId, content.sha256, async (tx) => {
        if (!(await this.media.completeClaim(mediaId, content, tx))) throw new ClaimLostError();
        await reservation?.settle(tx);
      });
      return content;
    } catch (error) {
      const row = await this.media.getLocal(mediaId);
      if (row && (row.mediaLength !== null || row.sha256 !== null)) throw cannotOverwrite();
      await this.store.delete(localContentKey(mediaId));
      if (!row) throw new MatrixError("M_NOT_FOUND", "Media ID was deleted during the upload");
      await this.media.releaseClaim(mediaId);
      throw error;
    }
  }

  /** Streams the body to the store; returns what the row needs. Nothing is left on failure. */
  private async storeBytes(
    mediaId: string,
    request: UploadRequest,
    limits: UserUploadLimits,
    reservation: QuotaReservation | undefined,
  ): Promise<NewContent> {
    const meter = new UploadMeter(limits.maxUploadSize, this.settings.md5, reservation);
    const key = localContentKey(mediaId);
    // A failing side fails the meter, and the store drops its temp file when
    // its source errors; a failing store destroys the meter in turn, so
    // neither side can wait forever.
    const results = await Promise.allSettled([
      feedMeter(request.body, meter),
      this.store.write(key, meter).catch((error: unknown) => {
        meter.destroy(error as Error);
        throw error;
      }),
    ]);
    const errors = results.flatMap((r) => (r.status === "rejected" ? [r.reason as unknown] : []));
    if (errors.length > 0) {
      await this.store.delete(key).catch(() => {});
      if (errors.some((e) => e instanceof UploadTooLargeError)) throw tooLarge();
      throw errors.find(isQuotaError) ?? errors[0];
    }
    return {
      mediaType: request.contentType || DEFAULT_TYPE,
      mediaLength: meter.bytes,
      uploadName: request.uploadName,
      sha256: meter.sha256(),
      md5: meter.md5(),
    };
  }

  private mxc(mediaId: string): string {
    return `mxc://${this.settings.serverName}/${mediaId}`;
  }
}

/** The claimed row was gone (deleted) or no longer claimed when the bytes were complete. */
class ClaimLostError extends Error {
  constructor() {
    super("the upload's claim on its media id was lost");
    this.name = "ClaimLostError";
  }
}

/** The advisory lock an async upload holds while it fills `mediaId`. */
function uploadLockName(mediaId: string): string {
  return `mxcd_upload:${mediaId}`;
}

function cannotOverwrite(): MatrixError {
  return new MatrixError("M_CANNOT_OVERWRITE_MEDIA", "Media ID cannot be overwritten");
}

/**
 * 413 before a byte is read when the declared length is over the user's
 * `max_upload_size`; a limit of 0 refuses every upload, an empty one included.
 */
function assertDeclaredSize(contentLength: number | undefined, limits: UserUploadLimits): void {
  if (limits.maxUploadSize === 0) throw tooLarge();
  if (contentLength !== undefined && contentLength > limits.maxUploadSize) throw tooLarge();
}

function isQuotaError(error: unknown): boolean {
  return error instanceof MatrixError && error.errcode === "M_USER_LIMIT_EXCEEDED";
}

function tooLarge(): MatrixError {
  return new MatrixError("M_TOO_LARGE", "Upload request body is too large", 413);
}
