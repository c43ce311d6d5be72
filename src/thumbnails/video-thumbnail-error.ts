/**
 * Why a video got no frame to thumbnail. One class with a `reason`, which is
 * also the outcome label on `/metrics` (video-thumbnail-metrics.ts) and picks
 * the Matrix error (media/thumbnail-service.ts): `failed` is 400 as for any
 * media that cannot be thumbnailed, the others are 413 `M_TOO_LARGE` as for
 * an image over `max_image_pixels` or `thumbnail_timeout`.
 */

/** `failed`: the command failed or wrote no usable PNG; the others name the limit that was hit. */
export type VideoFailureReason = "failed" | "too_large" | "source_too_large" | "timeout";

export class VideoThumbnailError extends Error {
  constructor(
    readonly reason: VideoFailureReason,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = "VideoThumbnailError";
  }
}
