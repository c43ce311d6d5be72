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
 * file with identical bytes, and the row insert ignores duplicates. CPU
 * work is bounded by the Thumbnailer's semaphore.
 * A source no larger than the request is answered with the original
 * content (never upscale, Matrix spec "Thumbnails").
 */
import { Readable } from "node:stream";
import { MatrixError } from "../domain/matrix-error.js";
import type { Logger } from "../logging/logger.js";
import type { LocalThumbnail, MediaRepository } from "../repositories/media-repository.js";
import type { BlobStore } from "../storage/blob-store.js";
import {
  localContentKey,
  localThumbnailKey,
  remoteContentKey,
  remoteThumbnailKey,
} from "../storage/media-paths.js";
import {
  ANIMATED_THUMBNAIL_TYPE,
  ImageTooLargeError,
  NotAnImageError,
  type StoredThumbnail,
  selectThumbnail,
  servesOriginal,
  type Thumbnailer,
  type ThumbnailRequest,
  type ThumbnailSize,
  thumbnailPlan,
} from "../thumbnails/thumbnailer.js";
import type { CrossProcessFlight } from "../util/cross-process-flight.js";
import { SingleFlight } from "../util/single-flight.js";

/**
 * Whose thumbnails: local media or a cached remote item. Says where the
 * source and the thumbnails live and how thumbnails are recorded.
 */
export interface ThumbnailSubject {
  /** Distinguishes concurrent work on different items (single flight). */
  readonly flightKey: string;
  readonly sourceKey: string;
  thumbnailKey(t: Omit<LocalThumbnail, "length">): string;
  list(): Promise<LocalThumbnail[]>;
  record(t: LocalThumbnail): Promise<void>;
}

/** What to send for a thumbnail request. */
export type ThumbnailAnswer =
  | { kind: "stored"; key: string; contentType: string; length: number }
  | { kind: "original"; key: string };

export interface ThumbnailSettings {
  readonly dynamic: boolean;
  readonly sizes: readonly ThumbnailSize[];
  readonly maxImagePixels: number;
}

export class ThumbnailService {
  readonly #flights = new SingleFlight<string, LocalThumbnail>();
  readonly #pregenerating = new Map<string, Promise<void>>();

  constructor(
    private readonly settings: ThumbnailSettings,
    private readonly thumbnailer: Thumbnailer,
    private readonly media: MediaRepository,
    private readonly store: BlobStore,
    private readonly logger: Logger,
    /** Generation of one thumbnail across processes (see the note above). */
    private readonly shared: CrossProcessFlight,
  ) {}

  /** Starts pre-generating the configured sizes for new content; never throws. */
  pregenerate(mediaId: string, mediaType: string): void {
    const key = this.local(mediaId).flightKey;
    if (!mediaType.toLowerCase().startsWith("image/") || this.#pregenerating.has(key)) return;
    const work = this.#pregenerate(mediaId)
      .catch((error: unknown) => {
        this.logger.warn({ err: error, media_id: mediaId }, "thumbnail pre-generation failed");
      })
      .finally(() => this.#pregenerating.delete(key));
    this.#pregenerating.set(key, work);
  }

  /** Waits for every pre-generation under way (shutdown). */
  async drain(): Promise<void> {
    await Promise.all(this.#pregenerating.values());
  }

  /** Local media `mediaId`. */
  local(mediaId: string): ThumbnailSubject {
    return {
      flightKey: `local/${mediaId}`,
      sourceKey: localContentKey(mediaId),
      thumbnailKey: (t) => localThumbnailKey(mediaId, t.width, t.height, t.contentType, t.method),
      list: () => this.media.listLocalThumbnails(mediaId),
      record: (t) => this.media.insertLocalThumbnail(mediaId, t),
    };
  }

  /** Cached remote media (origin, mediaId), stored under `filesystemId`. */
  remote(origin: string, mediaId: string, filesystemId: string): ThumbnailSubject {
    return {
      flightKey: `remote/${origin}/${mediaId}`,
      sourceKey: remoteContentKey(origin, filesystemId),
      thumbnailKey: (t) =>
        remoteThumbnailKey(origin, filesystemId, t.width, t.height, t.contentType, t.method),
      list: () => this.media.listRemoteThumbnails(origin, mediaId),
      record: (t) => this.media.insertRemoteThumbnail(origin, mediaId, filesystemId, t),
    };
  }

  async #pregenerate(mediaId: string): Promise<void> {
    const subject = this.local(mediaId);
    const source = await this.#readSource(subject);
    const info = await this.thumbnailer.probe(source);
    if (!info) return;
    for (const planned of thumbnailPlan(this.settings.sizes, info, this.settings.maxImagePixels)) {
      const result = await this.thumbnailer.generate(source, planned.request);
      if (result.kind !== "image") continue;
      await this.#storeThumbnail(subject, result.bytes, {
        width: planned.width,
        height: planned.height,
        method: planned.method,
        contentType: result.contentType,
      });
    }
  }

  /** The thumbnail to send for `request`; 400 when the media is not a thumbnailable image. */
  async thumbnail(subject: ThumbnailSubject, request: ThumbnailRequest): Promise<ThumbnailAnswer> {
    await this.#pregenerating.get(subject.flightKey);
    const stored = await subject.list();
    const usable = this.settings.dynamic
      ? exactMatch(stored, request)
      : coveringMatch(stored, request);
    if (usable) return answer(subject, usable);

    let source: Buffer;
    try {
      source = await this.#readSource(subject);
    } catch (error) {
      throw thumbnailError(error);
    }
    const info = await this.thumbnailer.probe(source);
    if (!info) throw thumbnailError(new NotAnImageError("not an image"));
    if (servesOriginal(info, request)) return { kind: "original", key: subject.sourceKey };
    const fallback = this.settings.dynamic ? undefined : selectThumbnail(stored, request);
    if (fallback) return answer(subject, fallback);

    const flightKey = `${subject.flightKey}/${request.width}x${request.height}/${request.method}/${request.animated}`;
    const made = await this.#flights.run(flightKey, () =>
      this.shared.run(flightKey, {
        // Made by another process meanwhile: its row is the exact size asked for.
        find: async () => exactMatch(await subject.list(), request),
        make: async () => {
          const result = await this.thumbnailer.generate(source, request).catch((e: unknown) => {
            throw thumbnailError(e);
          });
          if (result.kind !== "image") throw new Error("unexpected original after servesOriginal");
          return this.#storeThumbnail(subject, result.bytes, {
            width: request.width,
            height: request.height,
            method: request.method,
            contentType: result.contentType,
          });
        },
      }),
    );
    return answer(subject, made);
  }

  /** Opens a stored thumbnail's bytes. */
  read(key: string): Promise<Readable> {
    return this.store.read(key);
  }

  async #readSource(subject: ThumbnailSubject): Promise<Buffer> {
    const stream = await this.store.read(subject.sourceKey);
    return Buffer.concat((await stream.toArray()) as Buffer[]);
  }

  async #storeThumbnail(
    subject: ThumbnailSubject,
    bytes: Buffer,
    t: Omit<LocalThumbnail, "length">,
  ): Promise<LocalThumbnail> {
    await this.store.write(subject.thumbnailKey(t), Readable.from([bytes]));
    const thumbnail = { ...t, length: bytes.length };
    await subject.record(thumbnail);
    return thumbnail;
  }
}

function answer(subject: ThumbnailSubject, t: StoredThumbnail): ThumbnailAnswer {
  return {
    kind: "stored",
    key: subject.thumbnailKey(t),
    contentType: t.contentType,
    length: t.length,
  };
}

/** With dynamic thumbnails: one made for exactly this request (animated ones only when asked for). */
function exactMatch(stored: LocalThumbnail[], request: ThumbnailRequest) {
  const same = stored.filter(
    (t) => t.width === request.width && t.height === request.height && t.method === request.method,
  );
  const animated = same.find((t) => t.contentType === ANIMATED_THUMBNAIL_TYPE);
  const still = same.find((t) => t.contentType !== ANIMATED_THUMBNAIL_TYPE);
  // An animated request whose source is a still was answered, and stored, as a still.
  return request.animated ? (animated ?? (same.length === 1 ? still : undefined)) : still;
}

/** Without dynamic thumbnails: the best stored one, if it is at least as large as asked in one dimension. */
function coveringMatch(stored: LocalThumbnail[], request: ThumbnailRequest) {
  const best = selectThumbnail(stored, request);
  if (best && (best.width >= request.width || best.height >= request.height)) return best;
  return undefined;
}

function thumbnailError(error: unknown): unknown {
  if (error instanceof ImageTooLargeError) {
    return new MatrixError("M_TOO_LARGE", "Image too large to thumbnail", 413);
  }
  if (error instanceof NotAnImageError) {
    return new MatrixError("M_UNKNOWN", "Cannot generate a thumbnail of this media", 400);
  }
  return error;
}
