/**
 * Thumbnails of local media: pre-generation of `thumbnail_sizes` after an
 * upload (in the background, off the request path) and answering thumbnail
 * requests, from stored thumbnails or — with `dynamic_thumbnails`, or when
 * nothing suitable is stored yet — generated on demand, stored and reused.
 *
 * Concurrent requests for the same missing thumbnail generate it once:
 * within a process through a SingleFlight, across the processes sharing the
 * database through a CrossProcessFlight (an advisory lock per item and
 * size; the others wait for the stored row). A lost race is harmless: the
 * thumbnail's bytes are deterministic, the blob store writes atomically
 * (temp name, then rename or a single PUT), so a second writer replaces the
 * file with identical bytes, and the row insert ignores duplicates.
 * A source no larger than the request is answered with the original
 * content (never upscale, Matrix spec "Thumbnails"), with the type its
 * bytes have, whatever type the upload claimed.
 *
 * Memory. An original is read into memory only while holding one of the
 * Thumbnailer's `max_thumbnail_concurrency` slots, and dropped before the
 * slot is given back: a request that waits holds no buffer, and at most
 * that many originals are in memory whatever the concurrency. The header is
 * probed from the same buffer that is rendered (one read), and the outcome
 * is remembered (ProbeCache), so "serve the original", "too large" and
 * "not an image" are answered later without reading the original at all.
 *
 * Videos (`video_thumbnails`, docs/media.md "Video thumbnails"). With a
 * VideoThumbnailer, media whose type is `video/*` is thumbnailed from one
 * frame: the VideoThumbnailer stages the video and runs the command under
 * its own slots, then the frame is rendered like an image (holding an image
 * slot) and stored as an ordinary thumbnail row, so every serving path
 * (stored, fast path, federation) answers it. The original is never the
 * answer for a video, and the image ProbeCache is not used for one.
 *
 * Deletion. A thumbnail row is recorded only while its media row exists
 * (checked in the inserting transaction); when the media was deleted while
 * its thumbnail was being made, the written file is removed again, so a
 * deletion racing pre-generation leaves neither file nor row.
 */
import { Readable } from "node:stream";
import type { MediaRowReads } from "../cache/media-metadata-cache.js";
import { MatrixError } from "../domain/matrix-error.js";
import type { Logger } from "../logging/logger.js";
import type { LocalThumbnail, MediaRepository } from "../repositories/media-repository.js";
import { BlobNotFoundError, type BlobStore } from "../storage/blob-store.js";
import {
  localContentKey,
  localThumbnailKey,
  remoteContentKey,
  remoteThumbnailKey,
  urlCacheKey,
  urlCacheThumbnailKey,
} from "../storage/media-paths.js";
import { ProbeCache, type ProbeOutcome } from "../thumbnails/probe-cache.js";
import type { GenerationTrigger, ThumbnailStats } from "../thumbnails/thumbnail-stats.js";
import {
  ANIMATED_THUMBNAIL_TYPE,
  type ImageInfo,
  ImageTooLargeError,
  NotAnImageError,
  type RenderedThumbnail,
  type StoredThumbnail,
  selectThumbnail,
  servesOriginal,
  type Thumbnailer,
  type ThumbnailRequest,
  type ThumbnailSize,
  ThumbnailTimeoutError,
} from "../thumbnails/thumbnailer.js";
import { VideoThumbnailError } from "../thumbnails/video-thumbnail-error.js";
import { type VideoThumbnailer, videoThumbnailPlan } from "../thumbnails/video-thumbnailer.js";
import type { CrossProcessFlight } from "../util/cross-process-flight.js";
import { SingleFlight } from "../util/single-flight.js";

/** Probe outcomes remembered (a few hundred bytes each); least recently used evicted. */
const PROBE_CACHE_ENTRIES = 10_000;

/**
 * Whose thumbnails: local media or a cached remote item. Says where the
 * source and the thumbnails live and how thumbnails are recorded.
 */
export interface ThumbnailSubject {
  /** Distinguishes concurrent work on different items (single flight). */
  readonly flightKey: string;
  readonly sourceKey: string;
  /** The media's stored content type, when the caller knows it (picks the video path). */
  readonly mediaType?: string | null;
  thumbnailKey(t: Omit<LocalThumbnail, "length">): string;
  /** The stored thumbnails, through the metadata cache (the request path). */
  list(): Promise<readonly LocalThumbnail[]>;
  /**
   * The stored thumbnails read from the database, past the cache: the
   * single flight's re-check after another process made one, which the cache
   * may not have heard of yet (a poll woke the waiter, not a notification).
   */
  listFresh(): Promise<readonly LocalThumbnail[]>;
  /** Records a stored thumbnail; false (nothing recorded) when the media row is gone. */
  record(t: LocalThumbnail): Promise<boolean>;
}

/** What to send for a thumbnail request; `contentType` comes from the bytes, never the upload's claim. */
export type ThumbnailAnswer =
  | { kind: "stored"; key: string; contentType: string; length: number }
  | { kind: "original"; key: string; contentType: string };

export interface ThumbnailSettings {
  readonly dynamic: boolean;
  readonly sizes: readonly ThumbnailSize[];
}

/** The outcome of a request once decided: a stored thumbnail or the original. */
type Outcome =
  | { kind: "stored"; thumbnail: StoredThumbnail }
  | { kind: "original"; contentType: string };

/** Thrown inside when the media was deleted while its thumbnail was being made. */
class MediaGoneError extends Error {}

export class ThumbnailService {
  readonly #flights = new SingleFlight<string, Outcome>();
  readonly #pregenerating = new Map<string, Promise<void>>();
  readonly #probes = new ProbeCache(PROBE_CACHE_ENTRIES);

  constructor(
    private readonly settings: ThumbnailSettings,
    private readonly thumbnailer: Thumbnailer,
    private readonly media: MediaRepository,
    /** Thumbnail rows through the metadata cache (cache/media-metadata-cache.ts). */
    private readonly rows: Pick<MediaRowReads, "listLocalThumbnails" | "listRemoteThumbnails">,
    private readonly store: BlobStore,
    private readonly logger: Logger,
    /** Generation of one thumbnail across processes (see the note above). */
    private readonly shared: CrossProcessFlight,
    /** Figures for /metrics (thumbnail-metrics.ts). */
    private readonly stats: ThumbnailStats,
    /** Frames of `video/*` media (`video_thumbnails`); null: videos are not thumbnailed. */
    private readonly video: VideoThumbnailer | null,
  ) {}

  /**
   * Starts pre-generating the configured sizes for new content (`urlCache`:
   * a URL-preview image, under `url_cache/`); never throws.
   */
  pregenerate(mediaId: string, mediaType: string, urlCache = false): void {
    const subject = this.local(mediaId, urlCache, mediaType);
    const key = subject.flightKey;
    const video = this.#isVideo(subject);
    if (!(video || mediaType.toLowerCase().startsWith("image/")) || this.#pregenerating.has(key)) {
      return;
    }
    // Nothing to make: do not even read the original.
    if (this.settings.sizes.length === 0) return;
    this.stats.pregenerationsRunning += 1;
    const preview = urlCache ? null : mediaId;
    const work = (
      video ? this.#pregenerateVideo(subject, preview) : this.#pregenerate(mediaId, urlCache)
    )
      .catch((error: unknown) => {
        if (error instanceof MediaGoneError || error instanceof BlobNotFoundError) return;
        if (error instanceof VideoThumbnailError) {
          this.logger.info({ err: error, media_id: mediaId }, "no thumbnail of this video");
          return;
        }
        this.logger.warn({ err: error, media_id: mediaId }, "thumbnail pre-generation failed");
      })
      .finally(() => {
        this.#pregenerating.delete(key);
        this.stats.pregenerationsRunning -= 1;
      });
    this.#pregenerating.set(key, work);
  }

  /** Waits for every pre-generation under way (shutdown). */
  async drain(): Promise<void> {
    await Promise.all(this.#pregenerating.values());
  }

  /**
   * Local media `mediaId`; `urlCache`: URL-preview media, under `url_cache/`;
   * `mediaType`: its stored content type (`video/*` takes the video path).
   */
  local(mediaId: string, urlCache = false, mediaType?: string | null): ThumbnailSubject {
    return {
      flightKey: `local/${mediaId}`,
      sourceKey: urlCache ? urlCacheKey(mediaId) : localContentKey(mediaId),
      mediaType,
      thumbnailKey: (t) =>
        (urlCache ? urlCacheThumbnailKey : localThumbnailKey)(
          mediaId,
          t.width,
          t.height,
          t.contentType,
          t.method,
        ),
      list: () => this.rows.listLocalThumbnails(mediaId),
      listFresh: () => this.media.listLocalThumbnails(mediaId),
      record: (t) => this.media.insertLocalThumbnail(mediaId, t),
    };
  }

  /** Cached remote media (origin, mediaId), stored under `filesystemId`, of type `mediaType`. */
  remote(
    origin: string,
    mediaId: string,
    filesystemId: string,
    mediaType?: string | null,
  ): ThumbnailSubject {
    return {
      flightKey: `remote/${origin}/${mediaId}`,
      sourceKey: remoteContentKey(origin, filesystemId),
      mediaType,
      thumbnailKey: (t) =>
        remoteThumbnailKey(origin, filesystemId, t.width, t.height, t.contentType, t.method),
      list: () => this.rows.listRemoteThumbnails(origin, mediaId),
      listFresh: () => this.media.listRemoteThumbnails(origin, mediaId),
      record: (t) => this.media.insertRemoteThumbnail(origin, mediaId, filesystemId, t),
    };
  }

  /** Pre-generation holds one slot for the whole plan: one read of the original, then each size. */
  async #pregenerate(mediaId: string, urlCache: boolean): Promise<void> {
    const subject = this.local(mediaId, urlCache);
    await this.thumbnailer.withSlot(() =>
      this.#withSource(subject, async (source) => {
        const info = await this.#probe(subject, source);
        if (!info) return;
        let timedOut = false;
        for (const planned of this.thumbnailer.plan(this.settings.sizes, info)) {
          // One animation over the time budget says the others would be too.
          if (planned.request.animated && timedOut) continue;
          const result = await this.thumbnailer.render(source, info, planned.request);
          timedOut ||= result.fallback === "timeout";
          await this.#storeRendered(subject, result, planned, "upload");
        }
        if (!urlCache) await this.#storeBlurPreview(mediaId, source);
      }),
    );
  }

  /**
   * Makes and records the media's blur preview (blur-preview.ts; the media
   * listing returns it). A picture sharp cannot make one of is logged and
   * left without: the console then fetches its thumbnail as for older media.
   */
  async #storeBlurPreview(mediaId: string, source: Buffer): Promise<void> {
    let preview: string;
    try {
      preview = await this.thumbnailer.blurPreview(source);
    } catch (error) {
      this.logger.info({ err: error, media_id: mediaId }, "no blur preview of this picture");
      return;
    }
    await this.media.setLocalBlurPreview(mediaId, preview);
  }

  /**
   * The thumbnail to send for `request`: 400 when the media is not a
   * thumbnailable image, 413 over `max_image_pixels` or the time budget,
   * 404 when its bytes are missing from the store (or it was deleted meanwhile).
   */
  async thumbnail(subject: ThumbnailSubject, request: ThumbnailRequest): Promise<ThumbnailAnswer> {
    await this.#pregenerating.get(subject.flightKey);
    const stored = await subject.list();
    const usable = this.settings.dynamic
      ? exactMatch(stored, request)
      : coveringMatch(stored, request);
    if (usable) return answer(subject, { kind: "stored", thumbnail: usable });
    try {
      if (this.#isVideo(subject))
        return answer(subject, await this.#videoThumbnail(subject, request));
      const known = this.#probes.get(subject.sourceKey);
      const decided = known === undefined ? undefined : this.#decide(known, request, stored);
      if (decided) return answer(subject, decided);
      const flightKey = `${subject.flightKey}/${request.width}x${request.height}/${request.method}/${request.animated}`;
      const made = await this.#flights.run(flightKey, () =>
        this.shared.run(flightKey, {
          // Made by another process meanwhile: its row is the exact size asked for.
          find: async () => {
            const thumbnail = exactMatch(await subject.listFresh(), request);
            return thumbnail && ({ kind: "stored", thumbnail } as const);
          },
          make: () => this.thumbnailer.withSlot(() => this.#make(subject, request)),
        }),
      );
      return answer(subject, made);
    } catch (error) {
      throw thumbnailError(error);
    }
  }

  /**
   * The stored thumbnail `thumbnail()` would answer with for local media
   * whose thumbnail list is `stored` (from the metadata cache), decided the
   * same way, synchronously; undefined when it would do anything else (wait
   * for a pre-generation, answer the original, render). For the serving fast
   * path (http/fast-path.ts), which leaves every other case to `thumbnail()`.
   */
  storedAnswer(
    mediaId: string,
    urlCache: boolean,
    stored: readonly LocalThumbnail[],
    request: ThumbnailRequest,
  ): ThumbnailAnswer | undefined {
    const subject = this.local(mediaId, urlCache);
    if (this.#pregenerating.has(subject.flightKey)) return undefined;
    const usable = this.settings.dynamic
      ? exactMatch(stored, request)
      : coveringMatch(stored, request);
    return usable && answer(subject, { kind: "stored", thumbnail: usable });
  }

  /**
   * Whether a pre-generation of local media `mediaId` is under way (the
   * check `storedAnswer` makes first), without building a key when none is.
   */
  isPregeneratingLocal(mediaId: string): boolean {
    return this.#pregenerating.size > 0 && this.#pregenerating.has(`local/${mediaId}`);
  }

  /** Opens a stored thumbnail's bytes. */
  read(key: string): Promise<Readable> {
    return this.store.read(key);
  }

  /** True when `subject` is a video and video thumbnails are on. */
  #isVideo(subject: ThumbnailSubject): boolean {
    return this.video !== null && (subject.mediaType ?? "").toLowerCase().startsWith("video/");
  }

  /** A request for a video's thumbnail that nothing stored answers exactly (see `thumbnail`). */
  #videoThumbnail(subject: ThumbnailSubject, request: ThumbnailRequest): Promise<Outcome> {
    const flightKey = `${subject.flightKey}/${request.width}x${request.height}/${request.method}/video`;
    return this.#flights.run(flightKey, () =>
      this.shared.run(flightKey, {
        find: async () => {
          const thumbnail = exactMatch(await subject.listFresh(), { ...request, animated: false });
          return thumbnail && ({ kind: "stored", thumbnail } as const);
        },
        make: async () => {
          // Without dynamic thumbnails any stored one of the method beats running the command.
          const stored = this.settings.dynamic ? [] : await subject.list();
          const fallback = selectThumbnail(stored, request);
          if (fallback) return { kind: "stored", thumbnail: fallback };
          return this.#withFrame(subject, async (frame, info) => {
            const still = { ...request, animated: false };
            const result = await this.thumbnailer.render(frame, info, still);
            const thumbnail = await this.#storeRendered(subject, result, request, "request");
            return { kind: "stored", thumbnail };
          });
        },
      }),
    );
  }

  /**
   * Pre-generates the configured sizes of a video from one frame (one
   * command run), and the blur preview of local media `previewOf`.
   */
  async #pregenerateVideo(subject: ThumbnailSubject, previewOf: string | null): Promise<void> {
    await this.#withFrame(subject, async (frame, info) => {
      for (const planned of videoThumbnailPlan(this.settings.sizes, info)) {
        const result = await this.thumbnailer.render(frame, info, planned.request);
        await this.#storeRendered(subject, result, planned, "upload");
      }
      if (previewOf !== null) await this.#storeBlurPreview(previewOf, frame);
    });
  }

  /**
   * Runs `fn` with a video's frame and its header, holding a video slot and
   * then an image slot. Thumbnails of a frame without alpha are JPEG (a
   * video frame is photo-like; as PNG it would be several times larger): the
   * format in `info` only picks the encoder, sharp reads the PNG by its bytes.
   */
  #withFrame<T>(
    subject: ThumbnailSubject,
    fn: (frame: Buffer, info: ImageInfo) => Promise<T>,
  ): Promise<T> {
    const open = () => this.store.read(subject.sourceKey);
    return this.video!.withFrame(subject.sourceKey, open, (frame) =>
      this.thumbnailer.withSlot(async () => {
        const info = await this.thumbnailer.probe(frame);
        if (!info) throw new NotAnImageError("the video frame is not a readable PNG");
        this.thumbnailer.assertPixelLimit(info);
        const still = { ...info, animated: false, pages: 1 };
        return fn(
          frame,
          info.hasAlpha ? still : { ...still, format: "jpeg", contentType: "image/jpeg" },
        );
      }),
    );
  }

  /** Decides and, when needed, renders and stores; runs holding a slot. */
  async #make(subject: ThumbnailSubject, request: ThumbnailRequest): Promise<Outcome> {
    // Another flight (another size) may have probed while this one waited for the slot.
    const known = this.#probes.get(subject.sourceKey);
    const stored = this.settings.dynamic ? [] : await subject.list();
    const decided = known === undefined ? undefined : this.#decide(known, request, stored);
    if (decided) return decided;
    return this.#withSource(subject, async (source) => {
      const info = await this.#probe(subject, source);
      const early = this.#decide(info, request, stored);
      if (early) return early;
      const result = await this.thumbnailer.render(source, info!, request);
      const thumbnail = await this.#storeRendered(subject, result, request, "request");
      return { kind: "stored", thumbnail };
    });
  }

  /**
   * What can be answered from the header alone: the original, a stored
   * fallback (without dynamic thumbnails), or a refusal (thrown); undefined
   * when a thumbnail must be rendered.
   */
  #decide(
    info: ProbeOutcome,
    request: ThumbnailRequest,
    stored: readonly StoredThumbnail[],
  ): Outcome | undefined {
    if (info === null) throw new NotAnImageError("not an image");
    if (servesOriginal(info, request)) return { kind: "original", contentType: info.contentType };
    this.thumbnailer.assertPixelLimit(info);
    const fallback = this.settings.dynamic ? undefined : selectThumbnail(stored, request);
    return fallback && { kind: "stored", thumbnail: fallback };
  }

  async #probe(subject: ThumbnailSubject, source: Buffer): Promise<ProbeOutcome> {
    const info = (await this.thumbnailer.probe(source)) ?? null;
    this.#probes.set(subject.sourceKey, info);
    return info;
  }

  /** Reads the original into memory for `fn` (counted in the stats); call it holding a slot. */
  async #withSource<T>(subject: ThumbnailSubject, fn: (source: Buffer) => Promise<T>): Promise<T> {
    const stream = await this.store.read(subject.sourceKey);
    const source = Buffer.concat((await stream.toArray()) as Buffer[]);
    this.stats.loaded(source.length);
    try {
      return await fn(source);
    } finally {
      this.stats.released(source.length);
    }
  }

  /**
   * Writes a rendered thumbnail and records it. When the media row is gone
   * (deleted meanwhile), removes the file again and throws MediaGoneError.
   */
  async #storeRendered(
    subject: ThumbnailSubject,
    result: RenderedThumbnail,
    size: ThumbnailSize,
    trigger: GenerationTrigger,
  ): Promise<LocalThumbnail> {
    if (result.fallback) this.stats.fallbacks[result.fallback] += 1;
    const t = {
      width: size.width,
      height: size.height,
      method: size.method,
      contentType: result.contentType,
    };
    const key = subject.thumbnailKey(t);
    await this.store.write(key, Readable.from([result.bytes]));
    const thumbnail = { ...t, length: result.bytes.length };
    if (!(await subject.record(thumbnail))) {
      await this.store.delete(key);
      this.stats.discarded += 1;
      throw new MediaGoneError(`media of ${key} was deleted`);
    }
    this.stats.generated[trigger] += 1;
    return thumbnail;
  }
}

function answer(subject: ThumbnailSubject, outcome: Outcome): ThumbnailAnswer {
  if (outcome.kind === "original") {
    return { kind: "original", key: subject.sourceKey, contentType: outcome.contentType };
  }
  const t = outcome.thumbnail;
  return {
    kind: "stored",
    key: subject.thumbnailKey(t),
    contentType: t.contentType,
    length: t.length,
  };
}

/** With dynamic thumbnails: one made for exactly this request (animated ones only when asked for). */
function exactMatch(stored: readonly LocalThumbnail[], request: ThumbnailRequest) {
  const same = stored.filter(
    (t) => t.width === request.width && t.height === request.height && t.method === request.method,
  );
  const animated = same.find((t) => t.contentType === ANIMATED_THUMBNAIL_TYPE);
  const still = same.find((t) => t.contentType !== ANIMATED_THUMBNAIL_TYPE);
  // An animated request whose source is a still was answered, and stored, as a still.
  return request.animated ? (animated ?? (same.length === 1 ? still : undefined)) : still;
}

/** Without dynamic thumbnails: the best stored one, if it is at least as large as asked in one dimension. */
function coveringMatch(stored: readonly LocalThumbnail[], request: ThumbnailRequest) {
  const best = selectThumbnail(stored, request);
  if (best && (best.width >= request.width || best.height >= request.height)) return best;
  return undefined;
}

function thumbnailError(error: unknown): unknown {
  // A video without a usable frame: as an image that cannot be thumbnailed
  // (400), or over a limit (413, as an image over max_image_pixels).
  if (error instanceof VideoThumbnailError) {
    return error.reason === "failed"
      ? new MatrixError("M_UNKNOWN", "Cannot generate a thumbnail of this video", 400)
      : new MatrixError("M_TOO_LARGE", "Video too large or too costly to thumbnail", 413);
  }
  if (error instanceof ImageTooLargeError) {
    return new MatrixError("M_TOO_LARGE", "Image too large to thumbnail", 413);
  }
  if (error instanceof ThumbnailTimeoutError) {
    return new MatrixError("M_TOO_LARGE", "Image too costly to thumbnail", 413);
  }
  // The row is there but the bytes are not, or the media went while we worked:
  // 404 as for a download (BlobNotFoundError is the store's own "missing").
  if (error instanceof BlobNotFoundError || error instanceof MediaGoneError) {
    return new MatrixError("M_NOT_FOUND", "Not found");
  }
  if (error instanceof NotAnImageError) {
    return new MatrixError("M_UNKNOWN", "Cannot generate a thumbnail of this media", 400);
  }
  return error;
}
