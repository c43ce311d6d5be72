/**
 * The remote media cache: a client request for `mxc://other.server/id` is
 * answered from the cache, or fetched over federation, cached in Synapse's
 * layout (`remote_content/<origin>/...`) and streamed to the client while it
 * is being cached.
 *
 * - One fetch per item: concurrent requests for the same uncached media
 *   share one fetch (the first streams live, the others are served from the
 *   cache once it is complete). Across the processes sharing the database a
 *   CrossProcessFlight keeps it one fetch: the process holding the item's
 *   advisory lock fetches, the others wait for its row (NOTIFY, or a poll)
 *   and serve it from the shared cache; if the holder fails or dies, a
 *   waiter takes the lock and fetches itself.
 * - The SHA-256 and MD5 are computed on the way; the row is written in one transaction
 *   with its quarantine decision (QuarantineService.admitRemote: a block on
 *   the mxc, or a quarantined hash). Because the hash is only known at the
 *   end, the live stream holds back its last chunk until the decision: bytes
 *   that turn out to be quarantined end in a failed, truncated response, and
 *   are never served again.
 * - The first client is fed only as fast as it reads, with at most
 *   `teeBufferBytes` waiting for it; a client that lags further gets the
 *   rest from the cache once the fetch is committed (live-tee.ts).
 * - Failures are remembered for `failureTtlMs` in an LRU of at most
 *   `failureCacheSize` entries, so a dead server is not asked again for
 *   every request and requests for endless distinct ids cost bounded
 *   memory; the warnings they log are rate-limited (remote-fetch-failures.ts).
 *   Every other per-item table (`#inFlight`, `#tees`) loses its entry on
 *   every outcome: success, failure, quarantine, client gone.
 * - Only a fetch is rate limited (remote-download-limiter.ts), charged to the
 *   downloader of the request that starts it: headroom before the request,
 *   the declared length before the body, the rest after. Cached media and
 *   requests joining a fetch under way are never charged. A refusal (429)
 *   is not remembered as a failure: it is about the downloader, not the item.
 */
import { randomBytes } from "node:crypto";
import { PassThrough, type Readable } from "node:stream";
import type { MediaRowReads } from "../cache/media-metadata-cache.js";
import { MatrixError } from "../domain/matrix-error.js";
import type { Logger } from "../logging/logger.js";
import type { MediaRepository, RemoteMedia } from "../repositories/media-repository.js";
import type { BlobStore } from "../storage/blob-store.js";
import { remoteContentKey } from "../storage/media-paths.js";
import type { CrossProcessFlight } from "../util/cross-process-flight.js";
import { LiveTee } from "./live-tee.js";
import type { Md5Hashers } from "./md5-worker-pool.js";
import type { QuarantineService } from "./quarantine-service.js";
import { QuarantinedMediaError } from "./quarantined-media-error.js";
import type { DownloaderKey, RemoteDownloadCharges } from "./remote-download-limiter.js";
import { LogLimiter, RemoteFetchFailures } from "./remote-fetch-failures.js";
import {
  type FetchedMedia,
  type RemoteMediaFetcher,
  RemoteNotFoundError,
  RemoteTooLargeError,
} from "./remote-media-fetcher.js";
import { UploadMeter, UploadTooLargeError } from "./upload-meter.js";

export interface RemoteMediaSettings {
  readonly maxSize: number;
  readonly authenticatedMedia: boolean;
  /** Origins whose media is never fetched (Synapse's `prevent_media_downloads_from`). */
  readonly blockedOrigins: readonly string[];
  readonly failureTtlMs: number;
  /** Most failures remembered at once (least recently used dropped first). */
  readonly failureCacheSize: number;
  /** Most bytes buffered for a live client before it is served from the cache instead. */
  readonly teeBufferBytes: number;
  /** Where the fetched bytes' MD5 runs (md5-worker-pool.ts). */
  readonly md5: Md5Hashers;
}

/** Figures for /metrics (remote-fetch-metrics.ts). */
export interface RemoteFetchStats {
  /** Failures remembered now; never more than `failureCacheSize`. */
  readonly failuresRemembered: number;
  /** Fetches under way in this process. */
  readonly inFlight: number;
  /** Bytes buffered in memory for live clients, over every fetch. */
  readonly teeBufferedBytes: number;
  /** Failure warnings dropped by the rate limit since the last one logged. */
  readonly warningsSuppressed: number;
}

/** One warning line per origin per minute, at most 10 a minute in all. */
const FAILURE_LOG_LIMIT = { intervalMs: 60_000, maxLinesPerInterval: 10, maxKeys: 1000 };

/** A remote item to serve: from the cache, or live while it is being cached. */
export type RemoteSource =
  | { kind: "cached"; media: RemoteMedia }
  | { kind: "live"; contentType: string; uploadName: string | null; bytes: Readable };

const LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

export class RemoteMediaService {
  /** One entry per fetch under way; removed when it settles, whatever the outcome. */
  readonly #inFlight = new Map<string, Promise<RemoteMedia>>();
  /** Live clients' streams; removed when the stream closes. */
  readonly #tees = new Set<LiveTee>();
  readonly #failures: RemoteFetchFailures;
  readonly #warnings: LogLimiter;

  constructor(
    private readonly settings: RemoteMediaSettings,
    private readonly media: MediaRepository,
    /** Cached rows for the hot path (cache/media-metadata-cache.ts). */
    private readonly rows: Pick<MediaRowReads, "getRemote">,
    private readonly store: BlobStore,
    private readonly quarantine: QuarantineService,
    private readonly fetcher: RemoteMediaFetcher,
    private readonly logger: Logger,
    /** One fetch per item across processes (see the note above). */
    private readonly shared: CrossProcessFlight,
    /** Told of every item cached (after its commit, quarantined or not): PDQ hashing. */
    private readonly onCached: (row: RemoteMedia) => void,
    /** The download rate limit of fetches (see the note above). */
    private readonly limits: RemoteDownloadCharges,
    private readonly now: () => number = Date.now,
  ) {
    this.#failures = new RemoteFetchFailures(
      { ttlMs: settings.failureTtlMs, maxEntries: settings.failureCacheSize },
      now,
    );
    this.#warnings = new LogLimiter(FAILURE_LOG_LIMIT, now);
  }

  get stats(): RemoteFetchStats {
    let teeBufferedBytes = 0;
    for (const tee of this.#tees) teeBufferedBytes += tee.buffered;
    return {
      failuresRemembered: this.#failures.size,
      inFlight: this.#inFlight.size,
      teeBufferedBytes,
      warningsSuppressed: this.#warnings.suppressed,
    };
  }

  /**
   * The cached row, or a live stream of a fresh fetch; 404 when the media is
   * unknown remotely, blocked, quarantined (unless `bypassQuarantine`) or not
   * cached and `allowRemote` is false; 502 when the fetch fails; 429 when a
   * fetch would exceed the `downloader`'s download rate limit.
   */
  async open(
    origin: string,
    mediaId: string,
    options: {
      allowRemote: boolean;
      bypassQuarantine: boolean;
      legacy: boolean;
      downloader: DownloaderKey;
    },
  ): Promise<RemoteSource> {
    const notFound = () => new MatrixError("M_NOT_FOUND", "Not found");
    if (this.settings.blockedOrigins.includes(origin)) throw notFound();
    const cached = await this.rows.getRemote(origin, mediaId);
    if (cached) return { kind: "cached", media: this.#servable(cached, options, notFound) };
    if (!options.allowRemote) throw notFound();
    if (await this.quarantine.isBlocked(origin, mediaId)) throw notFound();
    const key = `${origin}/${mediaId}`;
    const pending = this.#inFlight.get(key);
    if (pending) {
      return { kind: "cached", media: this.#servable(await pending, options, notFound) };
    }
    this.#assertNotFailedRecently(key);
    const source = await this.#startFetch(origin, mediaId, key, options.downloader);
    // "cached": another process fetched it while we waited for its lock.
    if (source.kind === "live") return source;
    return { kind: "cached", media: this.#servable(source.media, options, notFound) };
  }

  /**
   * Waits until a live fetch (from `open`) is complete in the cache, without
   * serving its bytes (remote thumbnails need the whole original); 404 when
   * it arrived quarantined.
   */
  async ensureCached(origin: string, mediaId: string, source: RemoteSource): Promise<RemoteMedia> {
    if (source.kind === "cached") return source.media;
    const done = this.#inFlight.get(`${origin}/${mediaId}`);
    source.bytes.resume();
    const row = done ? await done : await this.media.getRemote(origin, mediaId);
    if (!row) throw new MatrixError("M_NOT_FOUND", "Not found");
    if (row.quarantinedBy !== null) throw new QuarantinedMediaError("Not found");
    return row;
  }

  #servable(
    row: RemoteMedia,
    options: { bypassQuarantine: boolean; legacy: boolean },
    notFound: () => MatrixError,
  ) {
    // Frozen first: media hidden anyway gets the plain 404, never a placeholder.
    if (options.legacy && this.settings.authenticatedMedia && row.authenticated) throw notFound();
    if (row.quarantinedBy !== null && !options.bypassQuarantine) {
      throw new QuarantinedMediaError(notFound().message);
    }
    return row;
  }

  #assertNotFailedRecently(key: string): void {
    const failure = this.#failures.get(key);
    if (failure) throw failure;
  }

  /**
   * Starts the one fetch of this item and registers it at once (before any
   * await), so every concurrent request joins it. Resolves with the live
   * stream when the remote starts sending, or with the cached row when
   * another process fetched it.
   */
  #startFetch(
    origin: string,
    mediaId: string,
    key: string,
    downloader: DownloaderKey,
  ): Promise<RemoteSource> {
    let streaming!: (source: RemoteSource) => void;
    const started = new Promise<RemoteSource>((resolve) => {
      streaming = resolve;
    });
    const done = (async () => {
      const row = await this.shared.run(key, {
        find: () => this.media.getRemote(origin, mediaId),
        make: () => this.#fetch(origin, mediaId, key, downloader, streaming),
      });
      // A no-op when this process streamed it live (`started` already resolved).
      streaming({ kind: "cached", media: row });
      return row;
    })().finally(() => this.#inFlight.delete(key));
    this.#inFlight.set(key, done);
    // A fetch that fails before streaming fails the first request too.
    return Promise.race([started, done.then(() => started)]);
  }

  /** Fetches the item, hands its live stream to `streaming`, caches it; resolves with the row. */
  async #fetch(
    origin: string,
    mediaId: string,
    key: string,
    downloader: DownloaderKey,
    streaming: (source: RemoteSource) => void,
  ): Promise<RemoteMedia> {
    // Refused before any connection is made.
    await this.limits.checkHeadroom(downloader);
    let fetched: FetchedMedia;
    try {
      fetched = await this.fetcher.fetch(origin, mediaId, new AbortController().signal);
    } catch (error) {
      throw this.#remember(key, error);
    }
    const charged = fetched.contentLength ?? 0;
    if (charged > 0) {
      try {
        await this.limits.charge(downloader, charged);
      } catch (error) {
        fetched.bytes.destroy();
        throw error;
      }
    }
    const live = new PassThrough();
    live.on("error", () => {});
    const tee = new LiveTee(live, this.settings.teeBufferBytes);
    this.#tees.add(tee);
    live.once("close", () => this.#tees.delete(tee));
    const contentType = fetched.contentType || "application/octet-stream";
    streaming({ kind: "live", contentType, uploadName: fetched.uploadName, bytes: live });
    try {
      return await this.#cache(origin, mediaId, fetched, live, tee, { downloader, charged });
    } catch (error) {
      // Fail the live stream with the client's error: sent as the answer
      // when no byte went out yet, else the response is cut off.
      const failure = this.#remember(key, error);
      live.destroy(failure);
      throw failure;
    }
  }

  /** Streams the fetched bytes to the store and to `tee`; writes the row; completes the live stream. */
  async #cache(
    origin: string,
    mediaId: string,
    fetched: FetchedMedia,
    live: PassThrough,
    tee: LiveTee,
    charge: { downloader: DownloaderKey; charged: number },
  ) {
    const filesystemId = randomLetters(24);
    const key = remoteContentKey(origin, filesystemId);
    const meter = new UploadMeter(this.settings.maxSize, this.settings.md5);
    const toStore = new PassThrough();
    // The store sees a failure through its own listener; this one only keeps
    // an error emitted after the store gave up from crashing the process.
    toStore.on("error", () => {});
    meter.on("data", (chunk: Buffer) => {
      // Never waits for the live client: its share is bounded (live-tee.ts).
      tee.push(chunk);
      if (!toStore.write(chunk)) {
        meter.pause();
        toStore.once("drain", () => meter.resume());
      }
    });
    meter.on("end", () => toStore.end());
    meter.on("error", (error) => toStore.destroy(error));
    fetched.bytes.on("error", (error) => meter.destroy(error));
    fetched.bytes.pipe(meter);
    try {
      await this.store.write(key, toStore);
    } catch (error) {
      fetched.bytes.destroy();
      throw error instanceof UploadTooLargeError ? new RemoteTooLargeError() : error;
    } finally {
      await this.#recordArrived(charge.downloader, meter.bytes - charge.charged);
    }
    const sha256 = meter.sha256();
    const row: RemoteMedia = {
      origin,
      mediaId,
      mediaType: fetched.contentType || "application/octet-stream",
      mediaLength: meter.bytes,
      createdTs: this.now(),
      uploadName: fetched.uploadName,
      filesystemId,
      lastAccessTs: this.now(),
      quarantinedBy: null,
      authenticated: this.settings.authenticatedMedia,
      sha256,
      md5: meter.md5(),
      // Computed after admission (MediaHashingService), off the request path.
      pdq: null,
      pdqQuality: null,
    };
    const quarantinedBy = await this.quarantine
      .admitRemote(origin, mediaId, sha256, (tx) => this.media.insertRemote(row, tx))
      .catch(async (error: unknown) => {
        await this.store.delete(key).catch(() => {});
        throw error;
      });
    if (quarantinedBy) {
      this.logger.info(
        { origin, media_id: mediaId, quarantined_by: quarantinedBy },
        "fetched remote media quarantined on arrival",
      );
      this.onCached({ ...row, quarantinedBy });
      // Before any byte went out the client gets a plain 404; after, a cut-off response.
      live.destroy(new MatrixError("M_NOT_FOUND", "Not found"));
    } else {
      this.onCached(row);
      const last = meter.bytes - 1;
      await tee.finish((start) => this.store.read(key, { start, end: last }));
    }
    return { ...row, quarantinedBy };
  }

  /** Charges bytes that arrived beyond the declared length; a database failure is only logged. */
  async #recordArrived(downloader: DownloaderKey, bytes: number): Promise<void> {
    if (bytes <= 0) return;
    await this.limits.record(downloader, bytes).catch((error: unknown) => {
      this.logger.warn({ err: error }, "charging a remote download to its rate limit failed");
    });
  }

  /** Maps a fetch failure to the client's error and remembers it for a while. */
  #remember(key: string, error: unknown): MatrixError {
    const matrixError =
      error instanceof RemoteNotFoundError
        ? new MatrixError("M_NOT_FOUND", "Not found")
        : error instanceof RemoteTooLargeError
          ? new MatrixError("M_TOO_LARGE", "Remote media is too large", 502)
          : new MatrixError("M_UNKNOWN", "Failed to fetch remote media", 502);
    if (!(error instanceof MatrixError)) this.#warn(key, error);
    this.#failures.remember(key, matrixError);
    return matrixError;
  }

  /** Logs a failure, at most once per origin a minute (the count of dropped lines goes with it). */
  #warn(key: string, error: unknown): void {
    const origin = key.slice(0, key.indexOf("/"));
    const admitted = this.#warnings.admit(origin);
    if (!admitted) return;
    this.logger.warn(
      { err: error, media: key, origin, suppressed_since_last: admitted.suppressed },
      "remote media fetch failed",
    );
  }
}

function randomLetters(length: number): string {
  const bytes = randomBytes(length);
  let out = "";
  for (const byte of bytes) out += LETTERS[byte % LETTERS.length];
  return out;
}
