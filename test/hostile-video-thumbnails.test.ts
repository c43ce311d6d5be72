/**
 * Hostile pass over video thumbnails (docs/media.md "Video thumbnails"):
 * uploads that claim `video/*` but hold something else — an HLS playlist
 * pointing at a video elsewhere on the server's disk (ffmpeg would follow
 * it: a local file read), an ffconcat script, a PNG, text, an empty file —
 * and 12 of them asked for at once against `concurrency: 2`. Every answer
 * is a Matrix error (400/413) or a thumbnail of the upload's own bytes;
 * nothing is left in the staging folder, and never more than `concurrency`
 * commands run at once.
 */
import assert from "node:assert/strict";
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import sharp from "sharp";
import { forEachEngine } from "./support/databases.js";
import { download, uploadBytes } from "./support/media.js";
import { until } from "./support/mxcd-processes.js";
import { markSuiteRan } from "./support/run-markers.js";
import { startTestServer, type TestServer, type TestUser } from "./support/test-server.js";
import { clipFile, haveFfmpeg, RECOMMENDED_VIDEO_COMMAND } from "./support/video.js";

const THUMB = "/_matrix/client/v1/media/thumbnail/test.local";
const work = mkdtempSync(join(tmpdir(), "mxcd-hostile-video-"));
after(() => rmSync(work, { recursive: true, force: true }));

function clip(name: string, graph: string): string {
  return clipFile(work, name, graph);
}

/**
 * A wrapper that records the most commands running at once in `dir/peak`
 * (a lock-free count of files in `dir/running`), then runs ffmpeg.
 */
function countingWrapper(dir: string): string {
  const script = join(dir, "ffmpeg-counting.sh");
  writeFileSync(
    script,
    `#!/bin/sh
mkdir -p "${dir}/running"
touch "${dir}/running/$$"
n=$(ls "${dir}/running" | wc -l)
peak=$(cat "${dir}/peak" 2>/dev/null || echo 0)
[ "$n" -gt "$peak" ] && echo "$n" > "${dir}/peak"
ffmpeg "$@"
code=$?
rm -f "${dir}/running/$$"
exit $code
`,
  );
  chmodSync(script, 0o755);
  return script;
}

if (!haveFfmpeg) {
  describe("hostile: video thumbnails", { skip: "!!! SKIPPED: ffmpeg is not installed" }, () => {});
} else {
  forEachEngine("hostile: video thumbnails", (engine) => {
    let server: TestServer;
    let user: TestUser;
    let staging: string;
    let record: string;
    let elsewhere: string;

    before(async () => {
      staging = mkdtempSync(join(work, "staging-"));
      record = mkdtempSync(join(work, "record-"));
      // A video on the server's disk that no upload holds.
      elsewhere = clip("elsewhere", "testsrc=s=160x120:r=10:d=1[out0]");
      server = await startTestServer(engine, {
        max_image_pixels: 300_000,
        video_thumbnails: {
          command: [countingWrapper(record), ...RECOMMENDED_VIDEO_COMMAND.slice(1)],
          timeout: "60s",
          max_source_size: "1M",
          concurrency: 2,
          staging_path: staging,
        },
      });
      user = await server.user("alice");
      markSuiteRan("ffmpeg");
    });
    after(() => server?.stop());

    const thumbnail = (id: string, query = "width=96&height=96&method=crop") =>
      download(server.baseUrl, `${THUMB}/${id}?${query}`, { token: user.token });

    it("uploads that claim video/* but are not a whitelisted video get a Matrix error, no thumbnail", async () => {
      const png = await sharp({
        create: { width: 64, height: 64, channels: 3, background: "#c00" },
      })
        .png()
        .toBuffer();
      const disguised: [string, Buffer | string][] = [
        // ffmpeg's HLS demuxer would open the file the playlist names.
        [
          "hls",
          `#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\nfile:${elsewhere}\n#EXT-X-ENDLIST\n`,
        ],
        ["concat", `ffconcat version 1.0\nfile '${elsewhere}'\n`],
        ["png", png],
        ["text", "this is not a video"],
        ["empty", ""],
        [
          "sdp",
          "v=0\no=- 0 0 IN IP4 127.0.0.1\ns=x\nc=IN IP4 127.0.0.1\nt=0 0\nm=video 5004 RTP/AVP 96\n",
        ],
      ];
      for (const [name, bytes] of disguised) {
        const id = await uploadBytes(user.http, bytes, { contentType: "video/mp4" });
        const res = await thumbnail(id);
        assert.ok([400, 404, 413].includes(res.status), `${name}: ${res.status}`);
        const body = JSON.parse(res.bytes.toString());
        assert.equal(typeof body.errcode, "string", name);
      }
      await until(() => readdirSync(staging).length === 0);
    });

    it("12 videos asked for at once run at most `concurrency` (2) commands; all answered", async () => {
      const videos = await Promise.all(
        Array.from({ length: 12 }, (_, i) =>
          uploadBytes(user.http, readFileSync(clip(`v${i}`, "testsrc=s=160x120:r=10:d=1[out0]")), {
            contentType: "video/mp4",
          }),
        ),
      );
      const answers = await Promise.all(videos.map((id) => thumbnail(id)));
      for (const res of answers) assert.equal(res.status, 200, res.bytes.toString().slice(0, 200));
      const peak = Number(readFileSync(join(record, "peak"), "utf8"));
      assert.ok(peak >= 1 && peak <= 2, `at most 2 commands at once, saw ${peak}`);
      await until(() => readdirSync(staging).length === 0);
    });
  });
}
