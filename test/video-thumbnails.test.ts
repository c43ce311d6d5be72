/**
 * Video thumbnails (`video_thumbnails`, docs/media.md "Video thumbnails"),
 * with the real ffmpeg and the command docs/media.md recommends: a
 * generated clip whose first second is black (the thumbnail must come from
 * a representative frame, not frame 0), a corrupt video, a "bomb" whose
 * frames are over `max_image_pixels`, a video over `max_source_size`, and a
 * hanging command whose process group (a child included) must be killed at
 * the timeout. Each is read from /metrics, the store and the staging folder,
 * never from timing. Runs on SQLite and PostgreSQL, and on S3 in npm test's
 * S3 pass (the video is staged from either store).
 *
 * ffmpeg is required: without it these suites are skipped loudly, and under
 * CI the run fails (the `ffmpeg` marker, scripts/run-tests.ts and .ci/run).
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import {
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import sharp from "sharp";
import { localThumbnailPrefix } from "../src/storage/media-paths.js";
import {
  pngDimensions,
  readCheckedFrame,
  sweepStagingFolders,
} from "../src/thumbnails/video-staging.js";
import { VideoThumbnailError } from "../src/thumbnails/video-thumbnail-error.js";
import { forEachEngine } from "./support/databases.js";
import { allKeys, download, uploadBytes } from "./support/media.js";
import { metric } from "./support/metrics.js";
import { until } from "./support/mxcd-processes.js";
import { markSuiteRan } from "./support/run-markers.js";
import { startTestServer, type TestServer, type TestUser } from "./support/test-server.js";
import { clipFile, haveFfmpeg, RECOMMENDED_VIDEO_COMMAND } from "./support/video.js";
import { waitFor } from "./support/wait-for.js";

const THUMB = "/_matrix/client/v1/media/thumbnail/test.local";
const FRAMES = "mxcd_video_thumbnail_frames_total";

const work = mkdtempSync(join(tmpdir(), "mxcd-video-test-"));
after(() => rmSync(work, { recursive: true, force: true }));

/** An MP4 made by ffmpeg from a lavfi graph (one output pad named `out0`). */
function clip(name: string, graph: string): Buffer {
  return readFileSync(clipFile(work, name, graph));
}

/** Whether `pid` is running (a zombie, killed and awaiting its reaper, is not). */
function running(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
  } catch {
    return false;
  }
}

function thumbnail(server: TestServer, user: TestUser, id: string, query: string) {
  return download(server.baseUrl, `${THUMB}/${id}?${query}`, { token: user.token });
}

function frames(server: TestServer, outcome: string): Promise<number> {
  return metric(server.baseUrl, FRAMES, `outcome="${outcome}"`);
}

async function thumbnailKeys(server: TestServer, mediaId: string): Promise<string[]> {
  const prefix = localThumbnailPrefix(mediaId);
  return (await allKeys(server.app.store)).filter((key) => key.startsWith(prefix));
}

describe("video frame header check (before the frame is read or decoded)", () => {
  it("reads a PNG's size from its IHDR and refuses non-PNG headers", () => {
    const header = Buffer.alloc(24);
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]).copy(header);
    header.writeUInt32BE(13, 8);
    header.write("IHDR", 12, "latin1");
    header.writeUInt32BE(640, 16);
    header.writeUInt32BE(480, 20);
    assert.deepEqual(pngDimensions(header), { width: 640, height: 480 });
    assert.equal(pngDimensions(header.subarray(0, 23)), undefined);
    assert.equal(pngDimensions(Buffer.from("GIF89a-and-some-more-bytes")), undefined);
    header.writeUInt32BE(0, 16);
    assert.equal(pngDimensions(header), undefined);
  });

  it("refuses a frame whose header declares more than max_image_pixels", async () => {
    // A crafted 100000 x 100000 PNG header, then 1 MiB that must never be read.
    const header = Buffer.alloc(33);
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]).copy(header);
    header.writeUInt32BE(13, 8);
    header.write("IHDR", 12, "latin1");
    header.writeUInt32BE(100_000, 16);
    header.writeUInt32BE(100_000, 20);
    header.set([8, 2, 0, 0, 0], 24);
    const file = join(work, "bomb-frame.png");
    writeFileSync(file, Buffer.concat([header, Buffer.alloc(1024 * 1024)]));
    await assert.rejects(readCheckedFrame(file, 1_000_000), (error: unknown) => {
      assert.ok(error instanceof VideoThumbnailError);
      assert.equal(error.reason, "too_large");
      return true;
    });
    await assert.rejects(readCheckedFrame(join(work, "missing.png"), 1_000_000), /no frame/);
  });
});

describe("video staging sweep at start-up", () => {
  it("removes only this user's old staging folders", async () => {
    const root = mkdtempSync(join(work, "sweep-"));
    const old = new Date(Date.now() - 3_600_000);
    for (const name of ["mxcd-video-old", "mxcd-video-fresh", "other-old"]) {
      mkdirSync(join(root, name));
      writeFileSync(join(root, name, "input"), "x");
      if (name.endsWith("old")) utimesSync(join(root, name), old, old);
    }
    assert.equal(await sweepStagingFolders(root, 600_000), 1);
    assert.deepEqual(readdirSync(root).sort(), ["mxcd-video-fresh", "other-old"]);
  });
});

if (!haveFfmpeg) {
  const reason = "ffmpeg is not installed (apt-get install ffmpeg; .ci/run does it)";
  if (process.env.CI === "true") {
    describe("video thumbnails", () => {
      throw new Error(`${reason}; CI requires the video thumbnail suites to run`);
    });
  } else {
    describe("video thumbnails", { skip: `!!! SKIPPED: ${reason}` }, () => {});
  }
} else {
  forEachEngine("video thumbnails with ffmpeg", (engine) => {
    let server: TestServer;
    let user: TestUser;
    let staging: string;

    before(async () => {
      staging = mkdtempSync(join(work, "staging-"));
      server = await startTestServer(engine, {
        // 320x240 frames pass; the 1024x1024 "bomb" does not.
        max_image_pixels: 300_000,
        video_thumbnails: {
          command: RECOMMENDED_VIDEO_COMMAND,
          timeout: "60s",
          max_source_size: "1M",
          staging_path: staging,
        },
      });
      user = await server.user("alice");
      markSuiteRan("ffmpeg");
    });
    after(() => server?.stop());

    const stagingIsEmpty = () => readdirSync(staging).length === 0;

    it("thumbnails a representative frame, not the black frame 0, once per upload", async () => {
      // One black second, then two of the colourful test pattern.
      const video = clip(
        "black-start",
        "color=c=black:s=320x240:r=10:d=1[a];testsrc=s=320x240:r=10:d=2[b];[a][b]concat=n=2:v=1[out0]",
      );
      const extracted = await frames(server, "extracted");
      const id = await uploadBytes(user.http, video, { contentType: "video/mp4" });
      // Pre-generation ran the command once; the request waits for it.
      const small = await thumbnail(server, user, id, "width=96&height=96&method=crop");
      assert.equal(small.status, 200);
      assert.equal(small.headers.get("content-type"), "image/jpeg");
      const meta = await sharp(small.bytes).metadata();
      assert.deepEqual([meta.format, meta.width, meta.height], ["jpeg", 96, 96]);
      const { channels } = await sharp(small.bytes).stats();
      const brightness = channels.slice(0, 3).reduce((sum, c) => sum + c.mean, 0) / 3;
      assert.ok(brightness > 60, `the thumbnail is the black first frame (mean ${brightness})`);
      // A size larger than the frame: the frame at its own size, never the video.
      const large = await thumbnail(server, user, id, "width=800&height=600&method=scale");
      assert.equal(large.status, 200);
      assert.equal(large.headers.get("content-type"), "image/jpeg");
      const largeMeta = await sharp(large.bytes).metadata();
      assert.deepEqual([largeMeta.width, largeMeta.height], [320, 240]);
      assert.equal((await frames(server, "extracted")) - extracted, 1);
      assert.ok((await thumbnailKeys(server, id)).length >= 3);
      // The listing's blur preview (migration 0018) is of the same frame.
      const admin = await server.user(`admin-${engine}`, { admin: true });
      const preview = async () => {
        const res = await admin.http.get("/_mxcd/admin/v1/media?limit=50");
        const item = res.body.media.find((m: { media_id: string }) => m.media_id === id);
        return item?.blur_preview as string | undefined;
      };
      await waitFor(async () => (await preview()) !== undefined, "the video's blur preview");
      const bytes = Buffer.from(
        (await preview())!.replace(/^data:image\/webp;base64,/, ""),
        "base64",
      );
      const previewMeta = await sharp(bytes).metadata();
      assert.deepEqual(
        [previewMeta.format, previewMeta.width, previewMeta.height],
        ["webp", 32, 24],
      );
      const previewStats = await sharp(bytes).stats();
      const previewBrightness =
        previewStats.channels.slice(0, 3).reduce((sum, c) => sum + c.mean, 0) / 3;
      assert.ok(previewBrightness > 60, `the preview is of the black frame (${previewBrightness})`);
      assert.equal((await frames(server, "extracted")) - extracted, 1, "no second frame for it");
      await until(stagingIsEmpty);
    });

    it("renders on request with dynamic thumbnails, once per size however many ask", async () => {
      const dynamic = await startTestServer(engine, {
        dynamic_thumbnails: true,
        thumbnail_sizes: [],
        video_thumbnails: { command: RECOMMENDED_VIDEO_COMMAND, staging_path: staging },
      });
      try {
        const owner = await dynamic.user("dora");
        const video = clip("valid", "testsrc=s=160x120:r=10:d=1[out0]");
        const id = await uploadBytes(owner.http, video, { contentType: "video/mp4" });
        // Nothing pre-generated (no sizes): four requests at once make one run.
        const answers = await Promise.all(
          [1, 2, 3, 4].map(() => thumbnail(dynamic, owner, id, "width=64&height=48&method=scale")),
        );
        for (const res of answers) {
          assert.equal(res.status, 200);
          assert.equal(res.headers.get("content-type"), "image/jpeg");
          const meta = await sharp(res.bytes).metadata();
          assert.deepEqual([meta.width, meta.height], [64, 48]);
        }
        assert.equal(await frames(dynamic, "extracted"), 1);
        // Stored and reused: asked again, no new run.
        const again = await thumbnail(dynamic, owner, id, "width=64&height=48&method=scale");
        assert.equal(again.status, 200);
        assert.equal(await frames(dynamic, "extracted"), 1);
        assert.equal((await thumbnailKeys(dynamic, id)).length, 1);
      } finally {
        await dynamic.stop();
      }
      await until(stagingIsEmpty);
    });

    it("answers 400 for a corrupt video and remembers the failure", async () => {
      const valid = clip("valid", "testsrc=s=160x120:r=10:d=1[out0]");
      // The container header survives, the rest is noise.
      const corrupt = Buffer.concat([valid.subarray(0, 64), randomBytes(valid.length - 64)]);
      const failed = await frames(server, "failed");
      const remembered = await frames(server, "remembered");
      const id = await uploadBytes(user.http, corrupt, { contentType: "video/mp4" });
      const first = await thumbnail(server, user, id, "width=96&height=96&method=crop");
      assert.equal(first.status, 400);
      assert.equal(JSON.parse(first.bytes.toString()).errcode, "M_UNKNOWN");
      assert.equal((await frames(server, "failed")) - failed, 1);
      // Asked again: answered from the failure memory, the command not run again.
      const again = await thumbnail(server, user, id, "width=320&height=240&method=scale");
      assert.equal(again.status, 400);
      assert.equal((await frames(server, "failed")) - failed, 1);
      assert.ok((await frames(server, "remembered")) - remembered >= 1);
      assert.deepEqual(await thumbnailKeys(server, id), []);
      await until(stagingIsEmpty);
    });

    it("answers 413 for a video whose frames are over max_image_pixels, before decoding", async () => {
      const bomb = clip("bomb", "testsrc=s=1024x1024:r=2:d=1[out0]");
      const tooLarge = await frames(server, "too_large");
      const id = await uploadBytes(user.http, bomb, { contentType: "video/mp4" });
      const res = await thumbnail(server, user, id, "width=96&height=96&method=crop");
      assert.equal(res.status, 413);
      assert.equal(JSON.parse(res.bytes.toString()).errcode, "M_TOO_LARGE");
      assert.equal((await frames(server, "too_large")) - tooLarge, 1);
      assert.deepEqual(await thumbnailKeys(server, id), []);
      await until(stagingIsEmpty);
    });

    it("answers 413 for a video over max_source_size without running the command", async () => {
      const sourceTooLarge = await frames(server, "source_too_large");
      const extracted = await frames(server, "extracted");
      const valid = clip("valid", "testsrc=s=160x120:r=10:d=1[out0]");
      // A valid clip padded past the 1M limit.
      const padded = Buffer.concat([valid, Buffer.alloc(1024 * 1024)]);
      const id = await uploadBytes(user.http, padded, { contentType: "video/mp4" });
      const res = await thumbnail(server, user, id, "width=96&height=96&method=crop");
      assert.equal(res.status, 413);
      assert.equal((await frames(server, "source_too_large")) - sourceTooLarge, 1);
      assert.equal(await frames(server, "extracted"), extracted);
      await until(stagingIsEmpty);
    });
  });

  /**
   * A command that records the staged input's folder and file modes, starts
   * a child that would sleep for ten minutes, records its pid, and waits.
   */
  const hangingCommand = (record: string) => {
    const script = [
      'stat -c %a "$(dirname "$1")" "$1" > "$3/modes"',
      "sleep 600 &",
      'echo $! > "$3/child.pid"',
      "wait",
    ].join("\n");
    return ["sh", "-c", script, "sh", "{input}", "{output}", record];
  };

  forEachEngine("video thumbnails with a hanging command", (engine) => {
    let server: TestServer;
    let user: TestUser;
    let staging: string;
    let record: string;

    before(async () => {
      staging = mkdtempSync(join(work, "staging-"));
      record = mkdtempSync(join(work, "record-"));
      server = await startTestServer(engine, {
        video_thumbnails: { command: hangingCommand(record), timeout: "1s", staging_path: staging },
      });
      user = await server.user("bob");
      markSuiteRan("ffmpeg");
    });
    after(() => server?.stop());

    it("kills the command's process group, child included, at the timeout", async () => {
      const timeouts = await frames(server, "timeout");
      const id = await uploadBytes(user.http, randomBytes(4096), { contentType: "video/webm" });
      const res = await thumbnail(server, user, id, "width=96&height=96&method=crop");
      assert.equal(res.status, 413);
      assert.equal(JSON.parse(res.bytes.toString()).errcode, "M_TOO_LARGE");
      assert.equal((await frames(server, "timeout")) - timeouts, 1);
      const pid = Number(readFileSync(join(record, "child.pid"), "utf8"));
      assert.ok(pid > 0);
      await until(() => !running(pid));
      // The staged video was private to mxcd's user, and is gone.
      assert.deepEqual(readFileSync(join(record, "modes"), "utf8").trim().split("\n"), [
        "700",
        "600",
      ]);
      await until(() => readdirSync(staging).length === 0);
      // Remembered: a second request does not start the command again.
      const again = await thumbnail(server, user, id, "width=32&height=32&method=crop");
      assert.equal(again.status, 413);
      assert.equal((await frames(server, "timeout")) - timeouts, 1);
    });

    it("runs at most `concurrency` (1) commands at once, however many videos arrive", async () => {
      const timeouts = await frames(server, "timeout");
      // Three uploads at once: three pre-generations wanting a run each.
      await Promise.all(
        [1, 2, 3].map(() =>
          uploadBytes(user.http, randomBytes(1024), { contentType: "video/mp4" }),
        ),
      );
      await until(async () => (await frames(server, "timeout")) - timeouts === 3);
      const peak = await metric(
        server.baseUrl,
        "mxcd_video_thumbnail_commands_running",
        'stat="peak"',
      );
      assert.equal(peak, 1);
      await until(() => readdirSync(staging).length === 0);
    });

    it("kills the running command at shutdown instead of waiting for its timeout", async () => {
      const ownRecord = mkdtempSync(join(work, "record-"));
      const ownStaging = mkdtempSync(join(work, "staging-"));
      const patient = await startTestServer(engine, {
        video_thumbnails: {
          command: hangingCommand(ownRecord),
          timeout: "1h",
          staging_path: ownStaging,
        },
      });
      const owner = await patient.user("carol");
      await uploadBytes(owner.http, randomBytes(1024), { contentType: "video/mp4" });
      const pidFile = join(ownRecord, "child.pid");
      await until(() => readdirSync(ownRecord).includes("child.pid"));
      await until(() => readFileSync(pidFile, "utf8").endsWith("\n"));
      const pid = Number(readFileSync(pidFile, "utf8"));
      assert.ok(running(pid));
      // Resolves only once the pre-generation (and so the command) ended.
      await patient.stop();
      await until(() => !running(pid));
      await until(() => readdirSync(ownStaging).length === 0);
    });
  });
}
