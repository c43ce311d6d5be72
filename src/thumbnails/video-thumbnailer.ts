/**
 * Frames of videos for thumbnails (`video_thumbnails`, docs/media.md "Video
 * thumbnails"): stages the video from the blob store into a private folder,
 * runs the configured command on it, and hands the PNG frame it wrote,
 * checked against `max_image_pixels`, to the caller, which thumbnails it
 * as any image.
 *
 * Design notes:
 * - Its own `concurrency` slots, separate from the image thumbnail slots:
 *   a run is mostly a subprocess, and a slow video must not starve image
 *   thumbnails. The caller renders inside `withFrame`, taking an image slot
 *   there, so at most `concurrency` frames are in memory at once.
 * - One deadline (`timeout`) from taking the slot: staging and the command
 *   share it, and the command's process group is killed when it passes.
 * - Failures caused by the video (bad, too large, too slow) are remembered
 *   for FAILURE_TTL_MS in an LRU of FAILURE_ENTRIES keys, so a bad video is
 *   not re-run on every request; errors of the store are not remembered.
 * - The staging folder is removed however the run ends.
 * - `stop()` (shutdown) kills the process groups of the runs under way, so
 *   draining does not wait for a slow video up to its timeout.
 */
import { rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import type { Readable } from "node:stream";
import { LRUCache } from "lru-cache";
import type { Config } from "../config/config-schema.js";
import type { Logger } from "../logging/logger.js";
import { Semaphore } from "../util/semaphore.js";
import {
  ImageTooLargeError,
  NotAnImageError,
  type ThumbnailMethod,
  type ThumbnailRequest,
  type ThumbnailSize,
  ThumbnailTimeoutError,
  thumbnailGeometry,
} from "./thumbnailer.js";
import { runVideoCommand } from "./video-command.js";
import {
  makeStagingFolder,
  readCheckedFrame,
  stageSource,
  sweepStagingFolders,
} from "./video-staging.js";
import { VideoThumbnailError } from "./video-thumbnail-error.js";
import type { VideoThumbnailStats } from "./video-thumbnail-metrics.js";

/** How long a video's failure is remembered (as tuwunel). */
const FAILURE_TTL_MS = 5 * 60_000;
/** Most failures remembered; the least recently used goes first. */
const FAILURE_ENTRIES = 1024;

/** Output of a command over the decoder's pixel limit (ffmpeg's `-max_pixels`). */
const FFMPEG_PIXEL_LIMIT = /exceeds specified max pixel count/;

export interface VideoThumbnailerOptions {
  /** argv with `{input}`, `{output}` and optionally `{max_pixels}` tokens. */
  readonly command: readonly string[];
  readonly timeoutMs: number;
  readonly maxSourceBytes: number;
  /** `max_image_pixels`: the largest frame accepted. */
  readonly maxPixels: number;
  readonly concurrency: number;
  /** Where the private staging folders are made. */
  readonly stagingRoot: string;
}

export class VideoThumbnailer {
  readonly #slots: Semaphore;
  readonly #stopping = new AbortController();
  readonly #failures = new LRUCache<string, { readonly error: VideoThumbnailError }>({
    max: FAILURE_ENTRIES,
    ttl: FAILURE_TTL_MS,
  });

  constructor(
    private readonly options: VideoThumbnailerOptions,
    private readonly stats: VideoThumbnailStats,
    private readonly logger: Logger,
  ) {
    this.#slots = new Semaphore(options.concurrency);
  }

  /**
   * Runs `fn` with the PNG frame of the video stored under `key` (opened by
   * `open` once a slot is held), holding one of the video slots throughout.
   * An image error of `fn` (not an image, too large, too slow) counts as the
   * video's failure and is remembered.
   * @throws VideoThumbnailError when there is no usable frame, or a
   *   remembered failure of `key`; the store's errors as they are.
   */
  withFrame<T>(key: string, open: () => Promise<Readable>, fn: (frame: Buffer) => Promise<T>) {
    this.#rethrowRemembered(key);
    return this.#slots.run(async () => {
      // It may have failed for another request while this one waited.
      this.#rethrowRemembered(key);
      const frame = await this.#extract(key, open);
      try {
        return await fn(frame);
      } catch (error) {
        const failure = asVideoFailure(error);
        if (failure) this.#failures.set(key, { error: failure });
        throw failure ?? error;
      }
    });
  }

  /**
   * Kills the runs under way (their process groups) and refuses new ones;
   * idempotent. Their callers get an error that is not remembered.
   */
  stop(): void {
    this.#stopping.abort(new Error("mxcd is stopping"));
  }

  /**
   * Removes staging folders left by a process killed mid-run: this user's,
   * older than twice the timeout (at least 10 minutes); resolves to how many.
   */
  sweepStaging(): Promise<number> {
    const olderThanMs = Math.max(2 * this.options.timeoutMs, 10 * 60_000);
    return sweepStagingFolders(this.options.stagingRoot, olderThanMs);
  }

  #rethrowRemembered(key: string): void {
    const remembered = this.#failures.get(key);
    if (!remembered) return;
    this.stats.outcomes.remembered += 1;
    throw remembered.error;
  }

  async #extract(key: string, open: () => Promise<Readable>): Promise<Buffer> {
    const { timeoutMs, maxSourceBytes, maxPixels } = this.options;
    const started = Date.now();
    const deadline = AbortSignal.timeout(timeoutMs);
    const stopping = this.#stopping.signal;
    stopping.throwIfAborted();
    const folder = await makeStagingFolder(this.options.stagingRoot);
    this.stats.started();
    try {
      const input = join(folder, "input");
      const output = join(folder, "frame.png");
      try {
        const signal = AbortSignal.any([deadline, stopping]);
        await stageSource(await open(), input, maxSourceBytes, signal);
      } catch (error) {
        if (stopping.aborted) throw stopping.reason;
        if (deadline.aborted) throw timeoutError(timeoutMs, "staging the video");
        throw error;
      }
      const remaining = timeoutMs - (Date.now() - started);
      if (remaining <= 0) throw timeoutError(timeoutMs, "staging the video");
      const result = await runVideoCommand(this.#argv(input, output), remaining, stopping);
      if (result.code !== 0) {
        this.logger.debug({ code: result.code, signal: result.signal, stderr: result.stderr, key });
        const tooLarge = FFMPEG_PIXEL_LIMIT.test(result.stderr);
        throw new VideoThumbnailError(
          tooLarge ? "too_large" : "failed",
          tooLarge
            ? `the video's frames are over the limit of ${maxPixels} pixels`
            : `the command exited with ${result.code ?? result.signal}`,
        );
      }
      const frame = await readCheckedFrame(output, maxPixels);
      this.stats.outcomes.extracted += 1;
      return frame;
    } catch (error) {
      if (error instanceof VideoThumbnailError) {
        this.stats.outcomes[error.reason] += 1;
        this.#failures.set(key, { error });
      }
      throw error;
    } finally {
      this.stats.finished();
      await rm(folder, { recursive: true, force: true });
    }
  }

  /** The command with its tokens replaced (each argument stays one argument). */
  #argv(input: string, output: string): string[] {
    return this.options.command.map((arg) =>
      arg
        .replaceAll("{input}", input)
        .replaceAll("{output}", output)
        .replaceAll("{max_pixels}", String(this.options.maxPixels)),
    );
  }
}

/** The VideoThumbnailer of `config.video_thumbnails`, or null when it has no `command` (off). */
export function createVideoThumbnailer(
  config: Pick<Config, "video_thumbnails" | "max_image_pixels">,
  stats: VideoThumbnailStats,
  logger: Logger,
): VideoThumbnailer | null {
  const video = config.video_thumbnails;
  if (!video.command) return null;
  const unguarded = unguardedFfmpegOptions(video.command);
  if (unguarded.length > 0) {
    logger.warn(
      { missing: unguarded },
      "video_thumbnails.command runs ffmpeg without its input whitelists: an upload holding a playlist can make it read other files into a thumbnail (docs/media.md)",
    );
  }
  const options = {
    command: video.command,
    timeoutMs: video.timeout,
    maxSourceBytes: video.max_source_size,
    maxPixels: config.max_image_pixels,
    concurrency: video.concurrency,
    stagingRoot: video.staging_path ?? tmpdir(),
  };
  return new VideoThumbnailer(options, stats, logger);
}

/**
 * The whitelist options an ffmpeg command lacks (docs/media.md "Video
 * thumbnails"): without them ffmpeg follows an HLS playlist or an ffconcat
 * list to files named inside the upload. Empty for any other program.
 */
export function unguardedFfmpegOptions(command: readonly string[]): string[] {
  const program = basename(command[0] ?? "");
  if (!/^ffmpeg(?:\.exe)?$/i.test(program)) return [];
  return ["-protocol_whitelist", "-format_whitelist"].filter((option) => !command.includes(option));
}

function timeoutError(timeoutMs: number, what: string): VideoThumbnailError {
  return new VideoThumbnailError("timeout", `${what} ran over the ${timeoutMs} ms budget`);
}

/** An image error of a video's frame, as the video's failure; undefined for any other error. */
function asVideoFailure(error: unknown): VideoThumbnailError | undefined {
  if (error instanceof VideoThumbnailError) return error;
  const options = { cause: error };
  if (error instanceof ImageTooLargeError) {
    return new VideoThumbnailError("too_large", error.message, options);
  }
  if (error instanceof ThumbnailTimeoutError) {
    return new VideoThumbnailError("timeout", error.message, options);
  }
  if (error instanceof NotAnImageError) {
    return new VideoThumbnailError("failed", error.message, options);
  }
  return undefined;
}

/** One thumbnail of a video frame to pre-generate: render `request`, record the rest. */
export interface PlannedVideoThumbnail {
  readonly request: ThumbnailRequest;
  readonly width: number;
  readonly height: number;
  readonly method: ThumbnailMethod;
}

/**
 * The thumbnails to pre-generate from a frame of `frame`'s size: one per
 * distinct output of `sizes`. Unlike an image's plan no size is skipped,
 * since a video's original is never an answer to a thumbnail request.
 */
export function videoThumbnailPlan(
  sizes: readonly ThumbnailSize[],
  frame: { readonly width: number; readonly height: number },
): PlannedVideoThumbnail[] {
  const plan = new Map<string, PlannedVideoThumbnail>();
  for (const size of sizes) {
    const { width, height } = thumbnailGeometry(frame, size);
    const key = `${width}x${height}/${size.method}`;
    if (!plan.has(key)) {
      plan.set(key, { request: { ...size, animated: false }, width, height, method: size.method });
    }
  }
  return [...plan.values()];
}
