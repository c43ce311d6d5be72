/**
 * `video_thumbnails.command` naming ffmpeg without `-protocol_whitelist` and
 * `-format_whitelist` is warned about when mxcd starts (docs/media.md "Video
 * thumbnails"): test/hostile-video-thumbnails shows such a command turning an
 * uploaded HLS playlist into a thumbnail of a file outside the upload.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { createLogger } from "../src/logging/logger.js";
import { VideoThumbnailStats } from "../src/thumbnails/video-thumbnail-metrics.js";
import {
  createVideoThumbnailer,
  unguardedFfmpegOptions,
} from "../src/thumbnails/video-thumbnailer.js";
import { RECOMMENDED_VIDEO_COMMAND } from "./support/video.js";

const BARE = ["/usr/bin/ffmpeg", "-i", "{input}", "-frames:v", "1", "{output}"];

/** The warnings (level 40) a thumbnailer made from `command` logs as it is created. */
function warningsFor(command: string[]): { msg: string; missing?: string[] }[] {
  const lines: string[] = [];
  const logger = createLogger("info", { write: (line: string) => void lines.push(line) });
  const config = {
    video_thumbnails: {
      command,
      timeout: 30_000,
      max_source_size: 1024 * 1024,
      concurrency: 1,
      staging_path: null,
    },
    max_image_pixels: 32_000_000,
  };
  createVideoThumbnailer(config, new VideoThumbnailStats(), logger)?.stop();
  return lines.map((line) => JSON.parse(line)).filter((entry) => entry.level === 40);
}

describe("video_thumbnails.command without ffmpeg's whitelists", () => {
  it("warns at start-up, naming the missing options", () => {
    const warnings = warningsFor(BARE);
    assert.equal(warnings.length, 1);
    assert.deepEqual(warnings[0]?.missing, ["-protocol_whitelist", "-format_whitelist"]);
    assert.match(warnings[0]?.msg ?? "", /whitelists/);
  });

  it("names only the option that is missing", () => {
    const command = [...RECOMMENDED_VIDEO_COMMAND].filter(
      (arg, i, all) => arg !== "-format_whitelist" && all[i - 1] !== "-format_whitelist",
    );
    assert.deepEqual(unguardedFfmpegOptions(command), ["-format_whitelist"]);
  });

  it("is quiet for the recommended command and for other programs", () => {
    assert.deepEqual(warningsFor([...RECOMMENDED_VIDEO_COMMAND]), []);
    assert.deepEqual(warningsFor(["/opt/bin/framegrab", "{input}", "{output}"]), []);
  });
});
