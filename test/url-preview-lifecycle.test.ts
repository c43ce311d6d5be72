/**
 * The life of URL previews (docs/previews.md "Expiry", "`ts`", "`data:`
 * images"), end to end on SQLite and PostgreSQL, with the media store the
 * run uses (filesystem, or S3 under MXCD_TEST_MEDIA_STORE=s3): the
 * url-preview-expiry job deletes expired cache rows and the url-cache images
 * no row names any more (row, bytes, thumbnails), never an image a kept row
 * names; a `ts` in the past is answered from the row current then; `data:`
 * images are stored like fetched ones and hostile ones only drop the image.
 *
 * Time is the app's injected clock (`clock`), moved by the tests; the job
 * runs every 100 ms of real time, and a test waits for two more committed
 * batches (`mxcd_url_preview_expiry_batches_total`) after moving the clock.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import type { ServerResponse } from "node:http";
import { after, before, describe, it } from "node:test";
import sharp from "sharp";
import { createDatabase, type Database } from "../src/db/database.js";
import { runMigrations } from "../src/db/migrate.js";
import type { BackgroundJob } from "../src/jobs/background-job.js";
import { JobRunner } from "../src/jobs/job-runner.js";
import { createLogger } from "../src/logging/logger.js";
import { urlCacheKey, urlCacheThumbnailPrefix } from "../src/storage/media-paths.js";
import { forEachEngine, freshDatabaseConfig } from "./support/databases.js";
import { download, mediaIdOf, uploadBytes } from "./support/media.js";
import { metric } from "./support/metrics.js";
import {
  listenPreviewOrigin,
  newPreviewOrigin,
  ORIGIN_HOST,
  type OriginRoute,
  type PreviewOrigin,
  sendHtml,
} from "./support/preview-origin.js";
import { startTestServer, type TestServer, type TestUser } from "./support/test-server.js";
import { waitFor } from "./support/wait-for.js";

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

interface OriginImages {
  png: Buffer;
  quarantined: Buffer;
}

async function startOrigin(images: OriginImages): Promise<PreviewOrigin> {
  const origin = newPreviewOrigin();
  const json = (res: ServerResponse, body: unknown) => {
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify(body));
  };
  const page = (title: string, image?: string) =>
    `<html><head><meta property="og:title" content="${title}">${
      image === undefined ? "" : `<meta property="og:image" content="${image}">`
    }</head><body>x</body></html>`;
  const b64 = (type: string, bytes: Buffer) => `data:${type};base64,${bytes.toString("base64")}`;
  const percent = [...images.png].map((b) => `%${b.toString(16).padStart(2, "0")}`).join("");
  const oembedPage = (title: string, href: string) =>
    `<html><head><title>${title}</title>
    <link rel="alternate" type="application/json+oembed" href="${href}"></head></html>`;
  const routes: Record<string, OriginRoute> = {
    "/img.png": (_q, res) => {
      res.writeHead(200, { "content-type": "image/png" });
      res.end(images.png);
    },
    "/life": (_q, res) => sendHtml(res, page("Life", "/img.png")),
    "/refetched": (_q, res) => sendHtml(res, page("Refetched", "/img.png")),
    "/long-lived": (_q, res) => sendHtml(res, page("Long-lived", "/img.png")),
    "/versioned": (_q, res) =>
      sendHtml(res, page(`version ${origin.hits.get("/versioned")}`, "/img.png")),
    "/data-b64": (_q, res) => sendHtml(res, page("b64", b64("image/png", images.png))),
    "/data-percent": (_q, res) => sendHtml(res, page("percent", `data:image/png,${percent}`)),
    "/data-bad-base64": (_q, res) =>
      sendHtml(res, page("bad", "data:image/png;base64,@@not*base64")),
    "/data-not-image": (_q, res) =>
      sendHtml(res, page("text", b64("text/html", Buffer.from("<b>")))),
    "/data-quarantined": (_q, res) =>
      sendHtml(res, page("q", b64("image/png", images.quarantined))),
    "/oembed-data-page": (_q, res) => sendHtml(res, oembedPage("oEmbed page", "/oembed-data.json")),
    "/oembed-data.json": (_q, res) =>
      json(res, {
        version: "1.0",
        type: "link",
        thumbnail_url: b64("image/png", images.png),
      }),
    "/oembed-big-page": (_q, res) => sendHtml(res, oembedPage("big", "/oembed-big.json")),
    // 120 KiB of "image" in the data: URL, over max_spider_size (100K).
    "/oembed-big.json": (_q, res) =>
      json(res, {
        version: "1.0",
        type: "link",
        thumbnail_url: b64("image/png", randomBytes(120 * 1024)),
      }),
  };
  await listenPreviewOrigin(origin, routes);
  return origin;
}

forEachEngine("URL preview lifecycle", (engine) => {
  let server: TestServer;
  let user: TestUser;
  let origin: PreviewOrigin;
  let images: OriginImages;
  /** The app's clock; tests only move it forward. */
  let clock = Date.now();

  const preview = (path: string, extra = "") =>
    user.http.get(
      `/_matrix/client/v1/media/preview_url?url=${encodeURIComponent(`${origin.base}${path}`)}${extra}`,
    );
  const previewImage = async (path: string): Promise<string> => {
    const res = await preview(path);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.match(res.body["og:image"], /^mxc:\/\/test\.local\/\d{4}-\d{2}-\d{2}_/);
    return mediaIdOf(res.body["og:image"]);
  };
  const downloadStatus = async (mediaId: string) =>
    (
      await download(server.baseUrl, `/_matrix/client/v1/media/download/test.local/${mediaId}`, {
        token: user.token,
      })
    ).status;
  const keysUnder = async (prefix: string) => {
    const keys: string[] = [];
    for await (const key of server.app.store.list(prefix)) keys.push(key);
    return keys;
  };
  const thumbnailRows = async (mediaId: string) =>
    (
      await server.app.database.db
        .selectFrom("local_media_repository_thumbnails")
        .select("media_id")
        .where("media_id", "=", mediaId)
        .execute()
    ).length;
  /** Waits until the image's pre-generated thumbnail exists (file and row). */
  const thumbnailsMade = (mediaId: string) =>
    waitFor(
      async () =>
        (await thumbnailRows(mediaId)) > 0 &&
        (await keysUnder(urlCacheThumbnailPrefix(mediaId))).length > 0,
      `thumbnails of ${mediaId}`,
    );
  /** Whether anything of the image is left: its row, bytes, thumbnail files or rows. */
  const imageState = async (mediaId: string) => {
    const row = await server.app.database.db
      .selectFrom("local_media_repository")
      .select("media_id")
      .where("media_id", "=", mediaId)
      .executeTakeFirst();
    return {
      row: row !== undefined,
      bytes: (await keysUnder(urlCacheKey(mediaId))).length > 0,
      thumbnailFiles: (await keysUnder(urlCacheThumbnailPrefix(mediaId))).length,
      thumbnailRows: await thumbnailRows(mediaId),
    };
  };
  const batches = () => metric(server.baseUrl, "mxcd_url_preview_expiry_batches_total");
  /** Waits for two more committed job batches: at least one ran wholly after the call. */
  const expiryPass = async () => {
    const start = await batches();
    await waitFor(async () => (await batches()) >= start + 2, "two url-preview-expiry batches");
  };
  /** The rule the job must keep: every cache row that names an image has the image. */
  const assertRowsHaveTheirImages = async () => {
    const rows = await server.app.database.db
      .selectFrom("url_preview_cache")
      .select("media_id")
      .where("media_id", "is not", null)
      .execute();
    for (const { media_id } of rows) {
      const state = await imageState(media_id!);
      assert.ok(state.row && state.bytes, `cache row names deleted image ${media_id}`);
    }
  };

  before(async () => {
    const png = await sharp({ create: { width: 40, height: 30, channels: 3, background: "red" } })
      .png()
      .toBuffer();
    const quarantined = await sharp({
      create: { width: 12, height: 12, channels: 3, background: "green" },
    })
      .png()
      .toBuffer();
    images = { png, quarantined };
    origin = await startOrigin(images);
    server = await startTestServer(
      engine,
      {
        url_preview_enabled: true,
        url_preview_ip_range_blacklist: ["127.0.0.0/8", "::1/128"],
        url_preview_ip_range_whitelist: [`${ORIGIN_HOST}/32`],
        url_preview_expiry_interval: "100ms",
        max_spider_size: "100K",
        thumbnail_sizes: [{ width: 16, height: 16, method: "scale" }],
      },
      { appOptions: { now: () => clock } },
    );
    user = await server.user("lifecycle");
    const admin = await server.user("lifecycleadmin", { admin: true });
    const id = await uploadBytes(admin.http, quarantined, { contentType: "image/png" });
    const q = await admin.http.post(`/_synapse/admin/v1/media/quarantine/test.local/${id}`, {});
    assert.equal(q.status, 200);
  });
  after(async () => {
    await server?.stop();
    origin?.server.closeAllConnections();
    await new Promise((r) => origin?.server.close(r));
  });

  // The data: tests run first: they do not move the clock.
  describe("data: images", () => {
    it("stores a base64 og:image like a fetched one (bytes, type, size, thumbnails)", async () => {
      const res = await preview("/data-b64");
      assert.equal(res.status, 200);
      assert.equal(res.body["og:title"], "b64");
      assert.equal(res.body["og:image:type"], "image/png");
      assert.equal(res.body["matrix:image:size"], images.png.length);
      assert.equal(res.body["og:image:width"], 40);
      assert.equal(res.body["og:image:height"], 30);
      const mediaId = mediaIdOf(res.body["og:image"]);
      const got = await download(
        server.baseUrl,
        `/_matrix/client/v1/media/download/test.local/${mediaId}`,
        { token: user.token },
      );
      assert.equal(got.status, 200);
      assert.deepEqual(got.bytes, images.png);
      await thumbnailsMade(mediaId);
    });

    it("stores a percent-encoded og:image", async () => {
      const mediaId = await previewImage("/data-percent");
      const got = await download(
        server.baseUrl,
        `/_matrix/client/v1/media/download/test.local/${mediaId}`,
        { token: user.token },
      );
      assert.deepEqual(got.bytes, images.png);
    });

    it("stores a data: oEmbed thumbnail_url", async () => {
      const res = await preview("/oembed-data-page");
      assert.equal(res.status, 200);
      assert.equal(res.body["og:title"], "oEmbed page");
      const got = await download(
        server.baseUrl,
        `/_matrix/client/v1/media/download/test.local/${mediaIdOf(res.body["og:image"])}`,
        { token: user.token },
      );
      assert.deepEqual(got.bytes, images.png);
    });

    it("drops bad base64, a non-image type, an image over max_spider_size and quarantined bytes, keeping the rest", async () => {
      for (const [path, title] of [
        ["/data-bad-base64", "bad"],
        ["/data-not-image", "text"],
        ["/oembed-big-page", "big"],
        ["/data-quarantined", "q"],
      ] as const) {
        const res = await preview(path);
        assert.equal(res.status, 200, `${path}: ${JSON.stringify(res.body)}`);
        assert.equal(res.body["og:title"], title, path);
        for (const key of ["og:image", "og:image:type", "matrix:image:size"]) {
          assert.equal(res.body[key], undefined, `${path}: ${key}`);
        }
      }
      // The quarantined bytes were stored quarantined by `system` (hash check).
      const stored = await server.app.database.db
        .selectFrom("local_media_repository")
        .select(["media_id", "quarantined_by"])
        .where("url_cache", "=", `${origin.base}/data-quarantined`)
        .execute();
      assert.equal(stored.length, 1);
      assert.equal(stored[0]!.quarantined_by, "system");
    });

    it("refuses a data: URL as the page URL (400)", async () => {
      const res = await user.http.get(
        `/_matrix/client/v1/media/preview_url?url=${encodeURIComponent(`data:text/html,<title>x</title>`)}`,
      );
      assert.equal(res.status, 400);
      assert.equal(res.body.errcode, "M_INVALID_PARAM");
    });
  });

  describe("ts", () => {
    it("answers a past ts from the preview current then, without fetching", async () => {
      const fetchedAt = clock;
      const first = await preview("/versioned");
      assert.equal(first.body["og:title"], "version 1");
      clock += 2 * HOUR; // the first row has expired
      const then = await preview("/versioned", `&ts=${fetchedAt + 10 * 60_000}`);
      assert.equal(then.status, 200);
      assert.deepEqual(then.body, first.body);
      assert.equal(origin.hits.get("/versioned"), 1, "a past ts must not fetch");
      // Without ts: the current preview, fetched anew.
      const now = await preview("/versioned");
      assert.equal(now.body["og:title"], "version 2");
      assert.equal(origin.hits.get("/versioned"), 2);
      // The past ts still finds the row of its time, not the newer one.
      const again = await preview("/versioned", `&ts=${fetchedAt + 10 * 60_000}`);
      assert.equal(again.body["og:title"], "version 1");
      // A ts in the future, and a ts before the first fetch: the current preview.
      for (const ts of [clock + DAY, fetchedAt - HOUR]) {
        const res = await preview("/versioned", `&ts=${ts}`);
        assert.equal(res.body["og:title"], "version 2", `ts=${ts}`);
      }
      assert.equal(origin.hits.get("/versioned"), 2);
      // 12 hours after the old row expired it no longer answers (its image
      // must outlive every answer): the current preview is fetched anew.
      clock = fetchedAt + HOUR + 12 * HOUR + 60_000;
      const late = await preview("/versioned", `&ts=${fetchedAt + 10 * 60_000}`);
      assert.equal(late.body["og:title"], "version 3");
      assert.equal(origin.hits.get("/versioned"), 3);
    });
  });

  describe("expiry", () => {
    it("deletes expired rows and unreferenced images (row, bytes, thumbnails), never an image a kept row names", async () => {
      const t0 = clock;
      const expiredBefore = await metric(
        server.baseUrl,
        "mxcd_url_preview_expired_total",
        'what="media"',
      );
      // /life at t0; /refetched at t0 and again 47 h later (a later hour
      // bucket: a new image, and the first one loses its row).
      const life = await previewImage("/life");
      const old = await previewImage("/refetched");
      // A row that stays fresh for 4 days (as if its lifetime allowed it):
      // its image passes the age rule but a row names it, so it must stay.
      const longLived = await previewImage("/long-lived");
      await server.app.database.db
        .updateTable("url_preview_cache")
        .set({ expires_ts: t0 + 96 * HOUR })
        .where("media_id", "=", longLived)
        .execute();
      for (const id of [life, old, longLived]) await thumbnailsMade(id);
      clock = t0 + 47 * HOUR;
      const fresh = await previewImage("/refetched");
      assert.notEqual(fresh, old);
      await thumbnailsMade(fresh);

      // 48 h + 1 min: the t0 rows expired at t0 + 1 h and were kept one day;
      // both t0 images are now older than 2 days and unreferenced: gone.
      // The fresh image's row is live: it stays.
      clock = t0 + 48 * HOUR + 60_000;
      await expiryPass();
      for (const id of [life, old]) {
        assert.deepEqual(
          await imageState(id),
          { row: false, bytes: false, thumbnailFiles: 0, thumbnailRows: 0 },
          id,
        );
        assert.equal(await downloadStatus(id), 404);
      }
      for (const id of [fresh, longLived]) {
        const kept = await imageState(id);
        assert.ok(kept.row && kept.bytes && kept.thumbnailFiles > 0 && kept.thumbnailRows > 0, id);
        assert.equal(await downloadStatus(id), 200, id);
      }
      await assertRowsHaveTheirImages();
      assert.ok(
        (await metric(server.baseUrl, "mxcd_url_preview_expired_total", 'what="media"')) >=
          expiredBefore + 2,
      );
      assert.ok(
        (await metric(server.baseUrl, "mxcd_url_preview_expired_total", 'what="cache_row"')) > 0,
      );

      // The fresh row expired at t0 + 48 h; kept until t0 + 72 h; its image
      // (stored at t0 + 47 h) may go from t0 + 95 h.
      clock = t0 + 94 * HOUR;
      await expiryPass();
      assert.equal(await downloadStatus(fresh), 200, "the image outlives its row by its age rule");
      assert.equal(
        (
          await server.app.database.db
            .selectFrom("url_preview_cache")
            .select("media_id")
            .where("media_id", "=", fresh)
            .execute()
        ).length,
        0,
        "the row was deleted a day after it expired",
      );
      clock = t0 + 95 * HOUR + 60_000;
      await expiryPass();
      assert.deepEqual(await imageState(fresh), {
        row: false,
        bytes: false,
        thumbnailFiles: 0,
        thumbnailRows: 0,
      });
      await assertRowsHaveTheirImages();
    });

    it("keeps quarantined url-cache media (its row keeps the hash blocked)", async () => {
      // Stored quarantined by the data: test above, days ago by now.
      const rows = await server.app.database.db
        .selectFrom("local_media_repository")
        .select(["media_id", "quarantined_by"])
        .where("url_cache", "=", `${origin.base}/data-quarantined`)
        .execute();
      assert.equal(rows.length, 1);
      assert.equal(rows[0]!.quarantined_by, "system");
      // Every other url-cache image of those days is gone, but for the one
      // a live row still names (/long-lived).
      const left = await server.app.database.db
        .selectFrom("local_media_repository")
        .select("url_cache")
        .where("url_cache", "is not", null)
        .where("quarantined_by", "is", null)
        .execute();
      assert.deepEqual(left, [{ url_cache: `${origin.base}/long-lived` }]);
    });
  });
});

/**
 * The runner's recurring jobs (the expiry job is one): they run beside the
 * one-off jobs, whatever the order, and `run()` (`mxcd jobs run`) takes each
 * until it is idle.
 */
forEachEngine("recurring background jobs", (engine) => {
  let database: Database;
  before(async () => {
    database = createDatabase(await freshDatabaseConfig(engine));
    await runMigrations(database);
  });
  after(async () => {
    await database?.close();
  });

  /** A recurring job that has work for `busyBatches` batches, then idles for an hour. */
  const recurring = (name: string, busyBatches: number) => {
    const job = {
      name,
      recurring: true,
      initialProgress: 0,
      batches: 0,
      async runBatch(_tx: unknown, progress: number) {
        job.batches += 1;
        const idle = progress + 1 >= busyBatches;
        return { progress: progress + 1, processed: 1, done: false, ...(idle && { idleMs: HOUR }) };
      },
    };
    return job;
  };
  const oneOff = (name: string): BackgroundJob<number> => ({
    name,
    initialProgress: 0,
    runBatch: async () => ({ progress: 1, processed: 1, done: true }),
  });
  const status = async (runner: JobRunner, name: string) =>
    (await runner.states()).find((s) => s.name === name)?.status;

  it("a recurring job registered first does not hold up the one-off jobs after it", async () => {
    const job = recurring("test-recurring-first", 3);
    const runner = new JobRunner(
      database,
      [job, oneOff("test-after-recurring")],
      createLogger("silent"),
      {
        pauseMs: 1,
      },
    );
    try {
      await runner.start();
      await waitFor(
        async () => (await status(runner, "test-after-recurring")) === "done" && job.batches >= 3,
        "the one-off job done and the recurring one idle",
      );
      assert.equal(await status(runner, "test-recurring-first"), "running");
    } finally {
      await runner.stop();
    }
  });

  it("run() takes a recurring job until it is idle, then returns", async () => {
    const job = recurring("test-recurring-run", 4);
    const runner = new JobRunner(
      database,
      [job, oneOff("test-run-one-off")],
      createLogger("silent"),
    );
    await runner.run({ failFast: true });
    assert.equal(job.batches, 4);
    assert.equal(await status(runner, "test-run-one-off"), "done");
  });
});
