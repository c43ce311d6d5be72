import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import sharp from "sharp";
import { forEachEngine } from "./support/databases.js";
import { download, uploadBytes } from "./support/media.js";
import { metric } from "./support/metrics.js";
import { startTestServer, type TestServer, type TestUser } from "./support/test-server.js";

const THUMB = "/_matrix/client/v1/media/thumbnail/test.local";
const GENERATED = "mxcd_thumbnails_generated_total";

function image(width: number, height: number, format: "png" | "jpeg") {
  const img = sharp({
    create: { width, height, channels: 3, background: { r: 200, g: 30, b: 90 } },
  });
  return (format === "png" ? img.png() : img.jpeg()).toBuffer();
}

/** A 100×100 GIF of three frames of different shades. */
async function animatedGif(): Promise<Buffer> {
  const frames = 3;
  const frameBytes = 100 * 100 * 4;
  const raw = Buffer.alloc(frameBytes * frames);
  for (let f = 0; f < frames; f++) raw.fill(f * 80, f * frameBytes, (f + 1) * frameBytes);
  return sharp(raw, { raw: { width: 100, height: 100 * frames, channels: 4, pageHeight: 100 } })
    .gif()
    .toBuffer();
}

async function thumbnail(server: TestServer, user: TestUser, id: string, query: string) {
  return download(server.baseUrl, `${THUMB}/${id}?${query}`, { token: user.token });
}

async function countThumbnailRows(server: TestServer, id: string): Promise<number> {
  const rows = await server.app.database.db
    .selectFrom("local_media_repository_thumbnails")
    .select("media_id")
    .where("media_id", "=", id)
    .execute();
  return rows.length;
}

forEachEngine("thumbnails", (engine) => {
  describe("pre-generated sizes", () => {
    let server: TestServer;
    let alice: TestUser;
    let png: string;
    before(async () => {
      server = await startTestServer(engine);
      alice = await server.user("alice");
      png = await uploadBytes(alice.http, await image(1000, 800, "png"), {
        contentType: "image/png",
      });
    });
    after(() => server.stop());

    it("generates the configured sizes after upload", async () => {
      const first = await thumbnail(server, alice, png, "width=32&height=32&method=crop");
      assert.equal(first.status, 200);
      assert.equal(await countThumbnailRows(server, png), 5);
    });

    it("answers crop with the requested size and PNG for a PNG source", async () => {
      const res = await thumbnail(server, alice, png, "width=96&height=96&method=crop");
      assert.equal(res.headers.get("content-type"), "image/png");
      assert.equal(res.headers.get("content-disposition"), "inline; filename=thumbnail.png");
      const meta = await sharp(res.bytes).metadata();
      assert.deepEqual([meta.format, meta.width, meta.height], ["png", 96, 96]);
    });

    it("answers scale keeping the aspect ratio and at least the requested size", async () => {
      const res = await thumbnail(server, alice, png, "width=300&height=200&method=scale");
      const meta = await sharp(res.bytes).metadata();
      assert.ok(meta.width! >= 300 || meta.height! >= 200, `${meta.width}x${meta.height}`);
      assert.ok(Math.abs(meta.width! / meta.height! - 1.25) < 0.02);
    });

    it("serves identical bytes for the same request every time", async () => {
      const a = await thumbnail(server, alice, png, "width=640&height=480");
      const b = await thumbnail(server, alice, png, "width=640&height=480");
      assert.deepEqual(a.bytes, b.bytes);
    });

    it("gives JPEG for a JPEG source", async () => {
      const jpeg = await uploadBytes(alice.http, await image(900, 600, "jpeg"), {
        contentType: "image/jpeg",
      });
      const res = await thumbnail(server, alice, jpeg, "width=320&height=240");
      assert.equal(res.headers.get("content-type"), "image/jpeg");
      assert.equal((await sharp(res.bytes).metadata()).format, "jpeg");
    });

    it("never upscales: a source smaller than the request is returned as it is", async () => {
      const small = await image(20, 20, "png");
      const id = await uploadBytes(alice.http, small, { contentType: "image/png" });
      const res = await thumbnail(server, alice, id, "width=320&height=240&method=scale");
      assert.equal(res.status, 200);
      assert.deepEqual(res.bytes, small);
      const big = await thumbnail(server, alice, png, "width=4000&height=4000&method=scale");
      const meta = await sharp(big.bytes).metadata();
      assert.ok(meta.width! <= 1000 && meta.height! <= 800);
    });

    it("answers animated=true on an animated GIF with an animated WebP, and a still otherwise", async () => {
      const gif = await uploadBytes(alice.http, await animatedGif(), { contentType: "image/gif" });
      const animated = await thumbnail(
        server,
        alice,
        gif,
        "width=32&height=32&method=crop&animated=true",
      );
      assert.equal(animated.headers.get("content-type"), "image/webp");
      assert.ok(((await sharp(animated.bytes, { animated: true }).metadata()).pages ?? 1) > 1);
      const still = await thumbnail(
        server,
        alice,
        gif,
        "width=32&height=32&method=crop&animated=false",
      );
      assert.notEqual(still.headers.get("content-type"), "image/webp");
      assert.equal((await sharp(still.bytes).metadata()).pages ?? 1, 1);
    });

    it("refuses non-image media with 400, never 500", async () => {
      const text = await uploadBytes(alice.http, "just text", { contentType: "text/plain" });
      const res = await alice.http.get(`${THUMB}/${text}?width=32&height=32`);
      assert.equal(res.status, 400);
      assert.equal(res.body.errcode, "M_UNKNOWN");
      const lying = await uploadBytes(alice.http, "not really a png", { contentType: "image/png" });
      const liar = await alice.http.get(`${THUMB}/${lying}?width=32&height=32`);
      assert.equal(liar.status, 400);
    });

    it("checks auth first, then the parameters", async () => {
      assert.equal((await server.http.get(`${THUMB}/${png}`)).status, 401);
      const missing = await alice.http.get(`${THUMB}/${png}?height=32`);
      assert.equal(missing.status, 400);
      assert.equal(missing.body.errcode, "M_MISSING_PARAM");
      for (const query of [
        "width=abc&height=3",
        "width=-1&height=3",
        "width=0&height=3",
        "width=3&height=3&method=zoom",
        "width=3&height=3&animated=yes",
      ]) {
        const res = await alice.http.get(`${THUMB}/${png}?${query}`);
        assert.equal(res.status, 400, query);
        assert.equal(res.body.errcode, "M_INVALID_PARAM", query);
      }
    });

    it("hides quarantined media and frozen media on the legacy path", async () => {
      const id = await uploadBytes(alice.http, await image(100, 100, "png"), {
        contentType: "image/png",
      });
      assert.equal(
        (await server.http.get(`/_matrix/media/v3/thumbnail/test.local/${id}?width=32&height=32`))
          .status,
        404,
      );
      await server.app.database.db
        .updateTable("local_media_repository")
        .set({ quarantined_by: "@admin:test.local" })
        .where("media_id", "=", id)
        .execute();
      // Written behind the server's back: announce it, as every writer does (its row is cached).
      server.app.mediaChanges.publish({ kind: "local", mediaId: id });
      const res = await alice.http.get(`${THUMB}/${id}?width=32&height=32`);
      assert.equal(res.status, 404);
      assert.equal(res.body.errcode, "M_NOT_FOUND");
    });
  });

  describe("dynamic thumbnails and limits", () => {
    let server: TestServer;
    let alice: TestUser;
    before(async () => {
      server = await startTestServer(engine, {
        dynamic_thumbnails: true,
        thumbnail_sizes: [],
        max_image_pixels: 1_000_000,
      });
      alice = await server.user("alice");
    });
    after(() => server.stop());

    it("generates the exact requested size once, even for concurrent requests, then reuses it", async () => {
      const id = await uploadBytes(alice.http, await image(600, 400, "png"), {
        contentType: "image/png",
      });
      const generatedBefore = await metric(server.baseUrl, GENERATED, 'trigger="request"');
      const answers = await Promise.all(
        Array.from({ length: 6 }, () =>
          thumbnail(server, alice, id, "width=50&height=50&method=crop"),
        ),
      );
      // Rendered once: a lost race would also leave one row (duplicates are
      // ignored), so the row count alone cannot tell; the counter can.
      const generated = () => metric(server.baseUrl, GENERATED, 'trigger="request"');
      assert.equal((await generated()) - generatedBefore, 1);
      for (const res of answers) {
        assert.equal(res.status, 200);
        assert.deepEqual(res.bytes, answers[0]!.bytes);
      }
      const meta = await sharp(answers[0]!.bytes).metadata();
      assert.deepEqual([meta.width, meta.height], [50, 50]);
      assert.equal(await countThumbnailRows(server, id), 1);
      await thumbnail(server, alice, id, "width=50&height=50&method=crop");
      assert.equal(await countThumbnailRows(server, id), 1);
      assert.equal((await generated()) - generatedBefore, 1, "reused, not rendered again");
    });

    it("refuses images over max_image_pixels with 413 M_TOO_LARGE", async () => {
      const id = await uploadBytes(alice.http, await image(1200, 1000, "png"), {
        contentType: "image/png",
      });
      const res = await alice.http.get(`${THUMB}/${id}?width=32&height=32`);
      assert.equal(res.status, 413);
      assert.equal(res.body.errcode, "M_TOO_LARGE");
    });
  });
});
