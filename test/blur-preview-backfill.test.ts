/**
 * The `blur-preview-backfill` job (docs/console.md "How the grid loads"):
 * local media stored without a blur preview (before migration 0018, or
 * imported) gets one, newest first, in keyset batches that resume where a
 * stopped run left off; quarantined media is never read; media whose
 * preview cannot be made (corrupt, bytes missing) is marked once and not
 * tried again; a video gets its preview from its stored thumbnail; the
 * listing then returns `blur_preview`. On SQLite and PostgreSQL, and on the
 * S3 store in the S3 pass (the server's store).
 */
import assert from "node:assert/strict";
import { Readable } from "node:stream";
import { after, before, describe, it } from "node:test";
import sharp from "sharp";
import { NO_BLUR_PREVIEW } from "../src/domain/blur-preview-value.js";
import { BlurPreviewBackfillJob, IDLE_MS } from "../src/jobs/blur-preview-backfill-job.js";
import { createBlurPreviewBackfill } from "../src/jobs/create-blur-preview-backfill.js";
import { JobRunner } from "../src/jobs/job-runner.js";
import { createLogger, type Logger } from "../src/logging/logger.js";
import { BlurPreviewRepository } from "../src/repositories/blur-preview-repository.js";
import type { BlobStore } from "../src/storage/blob-store.js";
import { localContentKey, localThumbnailKey } from "../src/storage/media-paths.js";
import { Thumbnailer } from "../src/thumbnails/thumbnailer.js";
import { forEachEngine } from "./support/databases.js";
import { metric } from "./support/metrics.js";
import { photoLike } from "./support/photo-like.js";
import {
  startTestServer,
  TEST_SERVER_NAME,
  type TestServer,
  type TestUser,
} from "./support/test-server.js";
import { waitFor } from "./support/wait-for.js";

const logger = createLogger("silent");
const PREFIX = "data:image/webp;base64,";

/** `store` counting its reads per key. */
function countingStore(store: BlobStore, reads: Map<string, number>): BlobStore {
  return new Proxy(store, {
    get(target, prop, receiver) {
      if (prop === "read") {
        return (key: string, range?: never) => {
          reads.set(key, (reads.get(key) ?? 0) + 1);
          return target.read(key, range);
        };
      }
      const value = Reflect.get(target, prop, receiver);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

forEachEngine("blur-preview-backfill", (engine) => {
  let server: TestServer;
  let admin: TestUser;
  const reads = new Map<string, number>();
  /** The jobs' clock: moved past the pause between passes where a test needs a new pass. */
  let clock = Date.now();
  /** Old images with bytes, newest first. */
  const images = ["img5", "img4", "img3", "img2", "img1"];

  const row = (mediaId: string) =>
    server.app.database.db
      .selectFrom("local_media_repository")
      .select(["blur_preview"])
      .where("media_id", "=", mediaId)
      .executeTakeFirstOrThrow();
  const job = (): BlurPreviewBackfillJob =>
    createBlurPreviewBackfill(
      { enable_blur_preview_backfill: true },
      {
        database: server.app.database,
        store: countingStore(server.app.store, reads),
        thumbnailer: new Thumbnailer({ maxImagePixels: 32 * 1024 * 1024, concurrency: 1 }),
        logger,
        now: () => clock,
      },
    )!;

  /** A row as an upgraded or imported server has it: no preview, old. */
  async function insert(mediaId: string, type: string, createdTs: number, bytes?: Buffer) {
    if (bytes) await server.app.store.write(localContentKey(mediaId), Readable.from([bytes]));
    await server.app.database.db
      .insertInto("local_media_repository")
      .values({
        media_id: mediaId,
        media_type: type,
        media_length: bytes?.length ?? 1234,
        created_ts: createdTs,
        user_id: "@alice:test",
      })
      .execute();
  }

  /** Stores a 320×240 `scale` thumbnail of `mediaId`, as pre-generation does. */
  async function thumbnailOf(mediaId: string, bytes: Buffer) {
    const key = localThumbnailKey(mediaId, 320, 240, "image/jpeg", "scale");
    await server.app.store.write(key, Readable.from([bytes]));
    await server.app.database.db
      .insertInto("local_media_repository_thumbnails")
      .values({
        media_id: mediaId,
        thumbnail_width: 320,
        thumbnail_height: 240,
        thumbnail_type: "image/jpeg",
        thumbnail_method: "scale",
        thumbnail_length: bytes.length,
      })
      .execute();
  }

  before(async () => {
    // The server's own backfill is off: the tests run the job themselves.
    server = await startTestServer(engine, { enable_blur_preview_backfill: false });
    admin = await server.user("admin", { admin: true });
    for (const [i, id] of images.entries()) {
      const jpeg = await (await photoLike(400, 300, i + 1)).jpeg().toBuffer();
      await insert(id, "image/jpeg", 100_000 - i, jpeg);
    }
    const png = await (await photoLike(200, 200, 9)).png().toBuffer();
    // Quarantined before any preview was made.
    await insert("quarantined", "image/png", 90_000, png);
    await server.app.database.db
      .updateTable("local_media_repository")
      .set({ quarantined_by: "@admin:test" })
      .where("media_id", "=", "quarantined")
      .execute();
    // A truncated PNG: its header reads, its pixels do not.
    await insert("corrupt", "image/png", 80_000, png.subarray(0, Math.floor(png.length / 2)));
    await insert("missing", "image/png", 70_000);
    // A video with a stored thumbnail (the frame the upload path rendered), and one without.
    await insert("video", "video/mp4", 60_000, Buffer.from("not really a video"));
    await thumbnailOf("video", await (await photoLike(320, 240, 11)).jpeg().toBuffer());
    // An image with a stored thumbnail: the preview is made from it, the original is not read.
    await thumbnailOf("img1", await (await photoLike(320, 240, 12)).jpeg().toBuffer());
    // Two videos without one: a whole page (of two) the walk must step past.
    await insert("bare-video", "video/mp4", 50_000, Buffer.from("no frame of it"));
    await insert("bare-video2", "video/mp4", 49_000, Buffer.from("nor of this"));
    await insert("text", "text/plain", 40_000, Buffer.from("not a picture"));
  });
  after(async () => {
    await server?.stop();
  });

  it("fills previews newest first, resumes after a stop, and skips quarantined and corrupt media once", async () => {
    // First run: stopped after its first committed batch (of two), as a SIGINT would.
    const stop = new AbortController();
    const first = job();
    await new JobRunner(
      server.app.database,
      [first],
      logger,
      { batchSize: 2, pauseMs: 0 },
      { committed: () => stop.abort() },
    ).run({ signal: stop.signal });
    assert.equal(first.stats.made, 2, "one batch of two made, then stopped");
    for (const id of images.slice(0, 2))
      assert.ok((await row(id)).blur_preview?.startsWith(PREFIX));
    for (const id of images.slice(2)) assert.equal((await row(id)).blur_preview, null, id);

    // Second run (another process, after a restart) goes on from the stored progress;
    // stopped after 20 batches should the walk go round in circles.
    const second = job();
    const runaway = new AbortController();
    await new JobRunner(
      server.app.database,
      [second],
      logger,
      { batchSize: 2, pauseMs: 0 },
      { committed: () => second.stats.batches >= 19 && runaway.abort() },
    ).run({ failFast: true, signal: runaway.signal });
    assert.deepEqual(
      { ...second.stats },
      { made: 3 + 1, none: 2, skipped: 2, batches: 5, passes: 1 },
      "the three older images and the video; corrupt and missing marked; the bare videos left",
    );
    // Nothing of the first run was redone: each image's original read once.
    for (const id of images.slice(0, 4)) assert.equal(reads.get(localContentKey(id)), 1, id);
    assert.equal(reads.get(localContentKey("img1")), undefined, "made from its thumbnail");
    assert.equal(reads.get(localContentKey("video")), undefined, "the video itself is never read");
    assert.equal(reads.get(localContentKey("quarantined")), undefined, "quarantined: never read");
    assert.equal((await row("quarantined")).blur_preview, null);
    assert.equal((await row("corrupt")).blur_preview, NO_BLUR_PREVIEW);
    assert.equal((await row("missing")).blur_preview, NO_BLUR_PREVIEW);
    assert.equal((await row("bare-video")).blur_preview, null);
    assert.equal((await row("text")).blur_preview, null);
    const video = (await row("video")).blur_preview!;
    const meta = await sharp(Buffer.from(video.slice(PREFIX.length), "base64")).metadata();
    assert.deepEqual([meta.format, meta.width, meta.height], ["webp", 32, 24]);

    // Right after a pass, any process (here a new one) keeps the pause: nothing is read.
    const resting = job();
    await new JobRunner(server.app.database, [resting], logger, { pauseMs: 0 }).run();
    assert.deepEqual({ ...resting.stats }, { made: 0, none: 0, skipped: 0, batches: 0, passes: 0 });
    assert.equal(reads.get(localContentKey("corrupt")), 1);

    // A later pass tries neither the corrupt nor the missing media again.
    clock += IDLE_MS;
    const third = job();
    await new JobRunner(server.app.database, [third], logger, { pauseMs: 0 }).run();
    assert.deepEqual({ ...third.stats }, { made: 0, none: 0, skipped: 2, batches: 1, passes: 1 });
    assert.equal(reads.get(localContentKey("corrupt")), 1);
  });

  it("the listing returns the backfilled previews, none for the marked media", async () => {
    const res = await admin.http.get("/_mxcd/admin/v1/media?limit=100");
    assert.equal(res.status, 200, res.text);
    const listed = new Map(
      (res.body.media as { media_id: string; blur_preview?: string }[]).map((m) => [
        m.media_id,
        m.blur_preview,
      ]),
    );
    for (const id of [...images, "video"]) assert.ok(listed.get(id)?.startsWith(PREFIX), id);
    for (const id of ["corrupt", "missing", "quarantined", "bare-video", "bare-video2", "text"]) {
      assert.ok(listed.has(id), `${id} listed`);
      assert.equal(listed.get(id), undefined, `${id}: no blur_preview`);
    }
  });

  it("drops a preview when the media is quarantined while it is being made", async () => {
    const png = await (await photoLike(100, 100, 13)).png().toBuffer();
    await insert("racing", "image/png", 30_000, png);
    const db = server.app.database.db;
    const thumbnailer = new Thumbnailer({ maxImagePixels: 32 * 1024 * 1024, concurrency: 1 });
    const made = thumbnailer.blurPreview.bind(thumbnailer);
    // An admin quarantines the media between the job's read and its write.
    thumbnailer.blurPreview = async (source) => {
      await db
        .updateTable("local_media_repository")
        .set({ quarantined_by: "@admin:test" })
        .where("media_id", "=", "racing")
        .execute();
      return made(source);
    };
    const racing = createBlurPreviewBackfill(
      { enable_blur_preview_backfill: true },
      {
        database: server.app.database,
        store: server.app.store,
        thumbnailer,
        logger,
        now: () => clock,
      },
    )!;
    clock += IDLE_MS;
    await new JobRunner(server.app.database, [racing], logger, { pauseMs: 0 }).run();
    assert.equal((await row("racing")).blur_preview, null, "no preview of quarantined media");
    assert.equal(racing.stats.made, 0);
  });

  it("a later run makes the preview of media unquarantined meanwhile", async () => {
    const base = "/_synapse/admin/v1/media";
    const u = await admin.http.post(`${base}/unquarantine/${TEST_SERVER_NAME}/quarantined`, {});
    assert.equal(u.status, 200, u.text);
    clock += IDLE_MS;
    const later = job();
    await new JobRunner(server.app.database, [later], logger, { pauseMs: 0 }).run();
    assert.equal(later.stats.made, 1, "only the unquarantined media (racing is still quarantined)");
    assert.ok((await row("quarantined")).blur_preview?.startsWith(PREFIX));
  });
});

forEachEngine("blur-preview-backfill limits", (engine) => {
  let server: TestServer;
  after(async () => {
    await server?.stop();
  });

  it("reads no original over the size bound and decodes none over max_image_pixels", async () => {
    server = await startTestServer(engine, { enable_blur_preview_backfill: false });
    const db = server.app.database.db;
    const jpeg = await (await photoLike(400, 300, 3)).jpeg().toBuffer();
    const reads = new Map<string, number>();
    const rows = [
      // The row says it is over the bound: never read.
      { id: "large", type: "image/jpeg", length: 10_000_000, bytes: jpeg },
      // The row says it is small, the store holds more than the bound: cut off.
      { id: "lying", type: "image/jpeg", length: 20, bytes: Buffer.concat([jpeg, jpeg]) },
      // Within the bound, 400×300 over max_image_pixels; the type's case does not matter.
      { id: "upper", type: "IMAGE/JPEG", length: jpeg.length, bytes: jpeg },
    ];
    for (const row of rows) {
      await server.app.store.write(localContentKey(row.id), Readable.from([row.bytes]));
      await db
        .insertInto("local_media_repository")
        .values({
          media_id: row.id,
          media_type: row.type,
          media_length: row.length,
          created_ts: 1000,
        })
        .execute();
    }
    const without: { media_id: string; reason: string }[] = [];
    const repository = new BlurPreviewRepository(server.app.database);
    const job = new BlurPreviewBackfillJob({
      previews: repository,
      record: (tx, mediaId, preview) => repository.record(tx, mediaId, preview),
      store: countingStore(server.app.store, reads),
      thumbnailer: new Thumbnailer({ maxImagePixels: 100_000, concurrency: 1 }),
      maxSourceBytes: jpeg.length + 100,
      logger: {
        info: (fields: { without?: typeof without }) =>
          void without.push(...(fields.without ?? [])),
      } as Pick<Logger, "info">,
    });
    await new JobRunner(server.app.database, [job], logger, { pauseMs: 0 }).run();
    assert.deepEqual(
      without.sort((a, b) => a.media_id.localeCompare(b.media_id)),
      [
        { media_id: "large", reason: "original too large" },
        { media_id: "lying", reason: "original too large" },
        { media_id: "upper", reason: "over max_image_pixels" },
      ],
    );
    assert.equal(reads.get(localContentKey("large")), undefined, "not read: its length is over");
    assert.equal(reads.get(localContentKey("lying")), 1);
  });
});

describe("blur-preview-backfill in the server", () => {
  it("runs by default and counts its passes on /metrics", async () => {
    const server = await startTestServer("sqlite");
    try {
      await waitFor(
        async () => (await metric(server.baseUrl, "mxcd_blur_preview_backfill_passes_total")) >= 1,
        "a pass of the server's blur-preview backfill",
      );
      const made = await metric(
        server.baseUrl,
        "mxcd_blur_preview_backfill_items_total",
        'outcome="made"',
      );
      assert.equal(made, 0, "nothing to make on a new server");
    } finally {
      await server.stop();
    }
  });
});
