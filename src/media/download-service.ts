/**
 * Decides whether a media item may be served and waits for pending uploads;
 * the routes then stream the bytes. Order of checks, as in Synapse and the
 * spec: unknown → 404; quarantined (without the admin bypass) → the same 404
 * (a QuarantinedMediaError, which a client route may answer with a placeholder
 * when the media is not also hidden as below);
 * no content yet → wait up to `timeout_ms`, then 504 (404 once expired);
 * legacy endpoint and frozen (authenticated) media → 404.
 */

import type { MediaRowReads } from "../cache/media-metadata-cache.js";
import { MatrixError } from "../domain/matrix-error.js";
import type { LocalMedia } from "../repositories/media-repository.js";
import type { PendingUploads } from "./pending-uploads.js";
import { QuarantinedMediaError } from "./quarantined-media-error.js";

export interface ResolveOptions {
  /** How long to wait for a pending upload. */
  readonly timeoutMs: number;
  /** Admin with `admin_unsafely_bypass_quarantine=true` on the client v1 download. */
  readonly bypassQuarantine: boolean;
  /** A legacy unauthenticated endpoint: frozen media is hidden there. */
  readonly legacy: boolean;
  /** The request path, quoted in the 404 text as Synapse does. */
  readonly requestPath: string;
  readonly signal?: AbortSignal;
}

/** Local media with its content present. */
export type ServableMedia = LocalMedia & { readonly mediaLength: number };

export const DEFAULT_TIMEOUT_MS = 20_000;
export const MAX_TIMEOUT_MS = 60_000;

export class DownloadService {
  constructor(
    private readonly settings: { authenticatedMedia: boolean; unusedExpirationMs: number },
    /** Rows through the metadata cache (cache/media-metadata-cache.ts). */
    private readonly media: Pick<MediaRowReads, "getLocal">,
    private readonly pending: PendingUploads,
    private readonly now: () => number = Date.now,
  ) {}

  async resolveLocal(mediaId: string, options: ResolveOptions): Promise<ServableMedia> {
    const notFound = () => new MatrixError("M_NOT_FOUND", `Not found '${options.requestPath}'`);
    let row = await this.media.getLocal(mediaId);
    if (!row) throw notFound();
    const expired = row.createdTs + this.settings.unusedExpirationMs < this.now();
    if (row.quarantinedBy !== null && !options.bypassQuarantine) {
      // Hidden for another reason too: the plain 404, never a placeholder.
      if (this.#frozen(row, options) || (row.mediaLength === null && expired)) throw notFound();
      throw new QuarantinedMediaError(`Not found '${options.requestPath}'`);
    }
    if (row.mediaLength === null) {
      if (expired) throw notFound();
      row = await this.pending.waitFor(
        mediaId,
        options.timeoutMs,
        async () => {
          const current = await this.media.getLocal(mediaId);
          return current?.mediaLength === null ? undefined : current;
        },
        options.signal,
      );
      if (!row) {
        throw new MatrixError("M_NOT_YET_UPLOADED", "Media has not been uploaded yet", 504);
      }
      // The bytes may have been quarantined by hash as they arrived.
      if (row.quarantinedBy !== null && !options.bypassQuarantine) {
        if (this.#frozen(row, options)) throw notFound();
        throw new QuarantinedMediaError(`Not found '${options.requestPath}'`);
      }
    }
    if (this.#frozen(row, options)) throw notFound();
    return row as ServableMedia;
  }

  /** Authenticated media asked for on a legacy endpoint: hidden there. */
  #frozen(row: LocalMedia, options: ResolveOptions): boolean {
    return options.legacy && this.settings.authenticatedMedia && row.authenticated;
  }
}

/** `timeout_ms` clamped to the server's maximum. */
export function clampTimeout(requested: number | undefined): number {
  return Math.min(requested ?? DEFAULT_TIMEOUT_MS, MAX_TIMEOUT_MS);
}
