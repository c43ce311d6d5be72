/**
 * `GET /preview_url` (docs/previews.md): fetch a page (or oEmbed endpoint,
 * or image) through the guarded PreviewFetcher, turn it into OpenGraph with
 * the core modules, store its image as url-cache media, and cache the
 * answer in the database for every process.
 *
 * Design notes:
 * - The cache key is (url without fragment, Accept-Language); rows carry the
 *   hour bucket of their fetch. A fresh row (success or failure) answers
 *   without fetching. A `ts` in the past is answered by the preview that was
 *   current then, when its row is still kept (UrlPreviewRepository.findAt,
 *   at most `HISTORY_SERVE_MS` after it expired); otherwise, and for a `ts`
 *   in the future, by the current preview (the spec lets the server answer
 *   a newer one). Expired rows and images are deleted by the
 *   url-preview-expiry job (src/jobs/url-preview-expiry-job.ts).
 * - Concurrent requests for one key share one fetch: in one process through
 *   `#inFlight`, across processes through the key's advisory lock
 *   (CrossProcessFlight): a process that does not hold it waits for the
 *   holder's notification and reads the row it wrote.
 * - The image is stored like Synapse's URL-cache media: id
 *   `YYYY-MM-DD_<random>`, bytes at `url_cache/<date>/<rest>`, a
 *   `local_media_repository` row with `url_cache` = the page URL, SHA-256,
 *   and quarantine by hash in the row's own transaction (ContentGate, with
 *   its feed record). It is not counted against any upload limit. A
 *   quarantined image gives no `og:image`. A `data:` image URL found in a
 *   page or an oEmbed response is decoded (data-url-image.ts) and stored the
 *   same way; the page URL itself is never a `data:` URL.
 */
import { createHash } from "node:crypto";
import { Readable } from "node:stream";
import { MatrixError } from "../domain/matrix-error.js";
import { filenameFromDisposition } from "../federation/content-disposition-filename.js";
import { newMediaId } from "../identifiers/media-id.js";
import type { Logger } from "../logging/logger.js";
import type { ContentGate } from "../media/upload-service.js";
import type { MediaRepository } from "../repositories/media-repository.js";
import type {
  CachedPreview,
  UrlPreviewRepository,
} from "../repositories/url-preview-repository.js";
import type { BlobStore } from "../storage/blob-store.js";
import { urlCacheKey } from "../storage/media-paths.js";
import { loadSharp } from "../thumbnails/load-sharp.js";
import { sniffImageFormat } from "../thumbnails/thumbnailer.js";
import type { FlightWork } from "../util/cross-process-flight.js";
import { DataUrlImageError, decodeDataUrlImage, isDataUrl } from "./data-url-image.js";
import { DEFAULT_MAX_HTML_BYTES, htmlToOpenGraph } from "./html-opengraph.js";
import { MAX_OEMBED_RESPONSE_BYTES, type OEmbedProviders, parseOEmbedResponse } from "./oembed.js";
import type { OpenGraph } from "./open-graph.js";
import {
  type FetchedResponse,
  fetchFailure,
  type PreviewFailureKind,
  PreviewFetchError,
  type PreviewFetcher,
  toPreviewError,
} from "./preview-fetcher.js";
import {
  combineHtmlAndOEmbed,
  imagePreview,
  oembedOnlyPreview,
  previewImageUrl,
  previewTtlMs,
  type StoredPreviewImage,
  withStoredImage,
} from "./preview-result.js";
import { HISTORY_SERVE_MS } from "./url-preview-lifetime.js";

/** How long a failed preview is answered from the cache (Synapse caches failures in memory). */
export const PREVIEW_FAILURE_TTL_MS = 60_000;
const HOUR_MS = 3_600_000;

const PAGE_ACCEPT = "text/html,application/xhtml+xml,image/*;q=0.9,application/json;q=0.8";
const IMAGE_ACCEPT = "image/*";
const OEMBED_ACCEPT = "application/json";

export interface UrlPreviewSettings {
  readonly serverName: string;
  /** `url_preview_accept_language`, joined: sent and part of the cache key. */
  readonly language: string;
  /** `url_preview_timeout`: the deadline of one preview's whole fetch. */
  readonly timeoutMs: number;
  /** `enable_authenticated_media`, for the image's row. */
  readonly authenticatedMedia: boolean;
  /** `max_spider_size`: the largest `data:` image decoded. */
  readonly maxImageBytes: number;
}

/** Single flight across processes (CrossProcessFlight on the `mxcd_url_preview` channel). */
export interface PreviewFlight {
  run<T>(name: string, work: FlightWork<T>): Promise<T>;
}

/** Counters behind the preview metrics. */
export interface UrlPreviewStats {
  served: number;
  cacheHits: number;
  /** Requests that waited for a fetch another request of this process had started. */
  flightJoins: number;
  readonly fetchFailures: Map<PreviewFailureKind, number>;
}

export class UrlPreviewService {
  readonly stats: UrlPreviewStats = {
    served: 0,
    cacheHits: 0,
    flightJoins: 0,
    fetchFailures: new Map(),
  };
  readonly #inFlight = new Map<string, Promise<CachedPreview>>();

  constructor(
    private readonly settings: UrlPreviewSettings,
    private readonly fetcher: PreviewFetcher,
    private readonly providers: OEmbedProviders,
    private readonly cache: UrlPreviewRepository,
    private readonly media: MediaRepository,
    private readonly store: BlobStore,
    private readonly gate: ContentGate,
    private readonly logger: Logger,
    private readonly flight: PreviewFlight,
    /** Called when an image is stored (thumbnail pre-generation). */
    private readonly onImage: (
      mediaId: string,
      mediaType: string,
      length: number,
    ) => void = () => {},
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * The preview of `rawUrl` for `userId`, as of `ts` (ms; the request's
   * `ts`, default now; see the design notes); throws MatrixError.
   */
  async preview(rawUrl: string, userId: string, ts?: number): Promise<OpenGraph> {
    const url = parsePreviewUrl(rawUrl);
    try {
      this.fetcher.checkUrl(url);
    } catch (error) {
      if (error instanceof PreviewFetchError) this.#countFailure(error.kind);
      throw error;
    }
    const language = this.settings.language;
    const now = this.now();
    if (ts !== undefined && ts < now) {
      const then = await this.cache.findAt(url, language, ts, now - HISTORY_SERVE_MS);
      if (then?.og != null) {
        this.stats.cacheHits += 1;
        this.stats.served += 1;
        return JSON.parse(then.og) as OpenGraph;
      }
    }
    const find = () => this.cache.findFresh(url, language, this.now());
    const cached = await find();
    if (cached) this.stats.cacheHits += 1;
    const key = `${language}\n${url}`;
    let flight = this.#inFlight.get(key);
    if (cached) flight = Promise.resolve(cached);
    else if (flight) this.stats.flightJoins += 1;
    else {
      // One fetch per process (this map), and one across processes (the
      // advisory lock of the key; waiters find the row the holder wrote).
      const name = createHash("sha256").update(key).digest("hex");
      flight = this.flight
        .run(name, {
          find,
          // A turn of the fetch bound, taken only by the fetching request;
          // a refusal (429) is not cached.
          make: () => this.fetcher.withSlot(() => this.#fetchAndCache(url, userId)),
        })
        .finally(() => this.#inFlight.delete(key));
      this.#inFlight.set(key, flight);
    }
    const entry = await flight;
    if (entry.status !== 200 || entry.og === null) {
      throw new MatrixError(
        (entry.errcode ?? "M_UNKNOWN") as "M_UNKNOWN",
        entry.error ?? "URL preview failed",
        entry.status,
      );
    }
    this.stats.served += 1;
    return JSON.parse(entry.og) as OpenGraph;
  }

  /** Fetches and stores the preview, or the failure, in the cache table; returns the row. */
  async #fetchAndCache(url: string, userId: string): Promise<CachedPreview> {
    const downloadTs = this.now();
    const base = {
      url,
      language: this.settings.language,
      bucketTs: downloadTs - (downloadTs % HOUR_MS),
      downloadTs,
    };
    const signal = AbortSignal.timeout(this.settings.timeoutMs);
    let entry: CachedPreview;
    try {
      const result = await this.#generate(url, userId, signal);
      entry = {
        ...base,
        expiresTs: downloadTs + result.ttlMs,
        og: JSON.stringify(result.og),
        status: 200,
        errcode: null,
        error: null,
        mediaId: result.mediaId,
      };
    } catch (raw) {
      const error = toPreviewError(raw, signal);
      if (!(error instanceof MatrixError)) throw error;
      if (error instanceof PreviewFetchError) this.#countFailure(error.kind);
      entry = {
        ...base,
        expiresTs: downloadTs + PREVIEW_FAILURE_TTL_MS,
        og: null,
        status: error.status,
        errcode: error.errcode,
        error: error.message,
        mediaId: null,
      };
    }
    await this.cache.put(entry);
    return entry;
  }

  async #generate(url: string, userId: string, signal: AbortSignal) {
    const oembedUrl = this.providers.requestUrlFor(url);
    if (oembedUrl !== undefined) {
      const response = await this.fetcher.get(oembedUrl, OEMBED_ACCEPT, signal);
      const { bytes } = await this.fetcher.readPrefix(
        response,
        MAX_OEMBED_RESPONSE_BYTES + 1,
        signal,
      );
      const oembed = parseOEmbedResponse(bytes, url);
      const og = oembedOnlyPreview(oembed);
      return {
        ...(await this.#withImage(og, url, userId, signal)),
        ttlMs: previewTtlMs(oembed.cacheAgeMs),
      };
    }
    const response = await this.fetcher.get(url, PAGE_ACCEPT, signal);
    const type = response.mediaType;
    if (type.startsWith("image/")) {
      const image = await this.#storeImage(response, url, userId, signal);
      const name = filenameFromDisposition(header(response.headers["content-disposition"]));
      const og = image ? imagePreview(image, name ?? undefined) : {};
      return { og, ttlMs: previewTtlMs(), mediaId: image ? mediaIdOf(image) : null };
    }
    if (type === "text/html" || type.startsWith("application/xhtml")) {
      const page = await this.fetcher.readPrefix(response, DEFAULT_MAX_HTML_BYTES, signal);
      const html = htmlToOpenGraph(page.bytes, {
        pageUrl: response.url,
        ...(response.contentType !== undefined && { contentType: response.contentType }),
        truncated: page.truncated,
      });
      const oembed = html.oembedUrl
        ? await this.#discoveredOEmbed(html.oembedUrl, url, signal)
        : undefined;
      const og = combineHtmlAndOEmbed(html.og, oembed);
      return {
        ...(await this.#withImage(og, response.url, userId, signal)),
        ttlMs: previewTtlMs(oembed?.cacheAgeMs),
      };
    }
    response.body.destroy();
    if (type === "application/json") return { og: {}, ttlMs: previewTtlMs(), mediaId: null };
    throw fetchFailure(
      "content_type",
      "Requested file's content type not allowed for this operation",
    );
  }

  /** An autodiscovered oEmbed endpoint's data; any failure (blacklist included) is no data. */
  async #discoveredOEmbed(oembedUrl: string, pageUrl: string, signal: AbortSignal) {
    try {
      const response = await this.fetcher.get(oembedUrl, OEMBED_ACCEPT, signal);
      const { bytes } = await this.fetcher.readPrefix(
        response,
        MAX_OEMBED_RESPONSE_BYTES + 1,
        signal,
      );
      return parseOEmbedResponse(bytes, pageUrl);
    } catch (raw) {
      this.#ignoredFailure(raw, signal, "oEmbed");
      return undefined;
    }
  }

  /** `og` with its image stored (or dropped when storing fails). */
  async #withImage(og: OpenGraph, pageUrl: string, userId: string, signal: AbortSignal) {
    const imageUrl = previewImageUrl(og);
    if (imageUrl === undefined) return { og, mediaId: null };
    let image: StoredPreviewImage | undefined;
    try {
      if (isDataUrl(imageUrl)) {
        const { mediaType, bytes } = await decodeDataUrlImage(
          imageUrl,
          this.settings.maxImageBytes,
        );
        image = await this.#storeImageBytes(bytes, mediaType, undefined, pageUrl, userId);
      } else {
        const response = await this.fetcher.get(imageUrl, IMAGE_ACCEPT, signal);
        image = await this.#storeImage(response, pageUrl, userId, signal);
      }
    } catch (raw) {
      if (raw instanceof DataUrlImageError) {
        this.logger.debug({ err: raw }, "URL preview: data: image skipped");
      } else this.#ignoredFailure(raw, signal, "image");
    }
    return { og: withStoredImage(og, image), mediaId: image ? mediaIdOf(image) : null };
  }

  /**
   * Stores an image response as url-cache media; undefined when its hash is
   * quarantined (the row is then stored quarantined, with its feed record).
   */
  async #storeImage(
    response: FetchedResponse,
    pageUrl: string,
    userId: string,
    signal: AbortSignal,
  ): Promise<StoredPreviewImage | undefined> {
    if (!response.mediaType.startsWith("image/")) {
      response.body.destroy();
      throw fetchFailure("content_type", "the image URL did not answer with an image");
    }
    // Already capped at max_spider_size by the fetch.
    const { bytes } = await this.fetcher.readPrefix(response, Number.MAX_SAFE_INTEGER, signal);
    const name = filenameFromDisposition(header(response.headers["content-disposition"]));
    return this.#storeImageBytes(bytes, response.mediaType, name, pageUrl, userId);
  }

  /** Stores image bytes as url-cache media (see #storeImage). */
  async #storeImageBytes(
    bytes: Uint8Array,
    mediaType: string,
    uploadName: string | null | undefined,
    pageUrl: string,
    userId: string,
  ): Promise<StoredPreviewImage | undefined> {
    const sha256 = createHash("sha256").update(bytes).digest("hex");
    // Beside SHA-256 on every admission path (docs/trust-and-safety.md).
    const md5 = createHash("md5").update(bytes).digest("hex");
    const mediaId = urlCacheMediaId(this.now());
    const key = urlCacheKey(mediaId);
    await this.store.write(key, Readable.from([bytes]));
    let quarantined: boolean;
    try {
      quarantined = await this.gate.admitLocal(mediaId, sha256, (tx) =>
        this.media.insertLocal(
          {
            mediaId,
            mediaType,
            mediaLength: bytes.length,
            uploadName: uploadName ?? null,
            sha256,
            md5,
            quarantinedBy: null,
            userId,
            createdTs: this.now(),
            authenticated: this.settings.authenticatedMedia,
            urlCache: pageUrl,
          },
          tx,
        ),
      );
    } catch (error) {
      await this.store.delete(key).catch(() => {});
      throw error;
    }
    if (quarantined) return undefined;
    this.onImage(mediaId, mediaType, bytes.length);
    const image: StoredPreviewImage = {
      mxcUri: `mxc://${this.settings.serverName}/${mediaId}`,
      mediaType,
      size: bytes.length,
    };
    const size = await imageSize(bytes);
    if (size) {
      image.width = size.width;
      image.height = size.height;
    }
    return image;
  }

  #ignoredFailure(raw: unknown, signal: AbortSignal, what: string): void {
    const error = toPreviewError(raw, signal);
    if (error instanceof PreviewFetchError) this.#countFailure(error.kind);
    else if (!(error instanceof MatrixError)) throw error;
    this.logger.debug({ err: error }, `URL preview: ${what} skipped`);
  }

  #countFailure(kind: PreviewFailureKind): void {
    this.stats.fetchFailures.set(kind, (this.stats.fetchFailures.get(kind) ?? 0) + 1);
  }
}

/** The URL to preview: absolute http(s), without its fragment; else 400. */
export function parsePreviewUrl(raw: string): string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new MatrixError("M_INVALID_PARAM", "Invalid URL", 400);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new MatrixError("M_INVALID_PARAM", "URL scheme must be http or https", 400);
  }
  url.hash = "";
  return url.href;
}

/** Synapse's url-cache media id: `YYYY-MM-DD_` and random letters. */
function urlCacheMediaId(now: number): string {
  return `${new Date(now).toISOString().slice(0, 10)}_${newMediaId()}`;
}

function mediaIdOf(image: StoredPreviewImage): string {
  return image.mxcUri.slice(image.mxcUri.lastIndexOf("/") + 1);
}

/** Width and height from the header of a known image format; undefined otherwise. */
async function imageSize(
  bytes: Uint8Array,
): Promise<{ width: number; height: number } | undefined> {
  if (sniffImageFormat(bytes) === undefined) return undefined;
  const sharp = await loadSharp();
  try {
    const meta = await sharp(bytes).metadata();
    return meta.width && meta.height ? { width: meta.width, height: meta.height } : undefined;
  } catch {
    return undefined;
  }
}

function header(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}
