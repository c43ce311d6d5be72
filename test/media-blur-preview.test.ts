/**
 * Blur previews in the server-wide media listing (migration 0018,
 * docs/admin-api.md "Server-wide media listing"): made once when an
 * upload's thumbnails are pre-generated, returned as `blur_preview` (a
 * base64 WebP data: URL) by `GET /_mxcd/admin/v1/media`, and never for
 * quarantined media (its picture is for the admin bypass only), nor for
 * media that is not a picture. On SQLite and PostgreSQL. The preview is
 * checked as a picture: a WebP of at most 32 px a side, the source's
 * aspect ratio, and blurred (far less detail than a plain resize).
 */
import assert from "node:assert/strict";
import { after, before, it } from "node:test";
import sharp from "sharp";
import { forEachEngine } from "./support/databases.js";
import { uploadBytes } from "./support/media.js";
import { photoLike } from "./support/photo-like.js";
import {
  startTestServer,
  TEST_SERVER_NAME,
  type TestServer,
  type TestUser,
} from "./support/test-server.js";
import { waitFor } from "./support/wait-for.js";

const LISTING = "/_mxcd/admin/v1/media?limit=100";
const PREFIX = "data:image/webp;base64,";

interface Listed {
  media_id: string;
  blur_preview?: string;
}

/** Mean over the channels of the pixels' standard deviation: how much detail is left. */
async function detail(image: sharp.Sharp): Promise<number> {
  const { channels } = await image.stats();
  const colour = channels.slice(0, 3);
  return colour.reduce((sum, c) => sum + c.stdev, 0) / colour.length;
}

forEachEngine("media blur previews", (engine) => {
  let server: TestServer;
  let admin: TestUser;
  let alice: TestUser;
  let source: Buffer;
  let picture: string;

  const listed = async (mediaId: string): Promise<Listed | undefined> => {
    const res = await admin.http.get(LISTING);
    assert.equal(res.status, 200, res.text);
    return (res.body.media as Listed[]).find((m) => m.media_id === mediaId);
  };
  const previewOf = async (mediaId: string) => (await listed(mediaId))?.blur_preview;

  before(async () => {
    server = await startTestServer(engine);
    admin = await server.user("admin", { admin: true });
    alice = await server.user("alice");
    source = await (await photoLike(800, 600, 7)).jpeg({ quality: 85 }).toBuffer();
    picture = await uploadBytes(alice.http, source, { contentType: "image/jpeg" });
    // Made in the background after the upload, with its thumbnails.
    await waitFor(async () => (await previewOf(picture)) !== undefined, "the blur preview");
  });

  after(async () => {
    await server?.stop();
  });

  it("lists a picture with a tiny blurred WebP of it, as a data: URL", async () => {
    const preview = (await previewOf(picture))!;
    assert.ok(preview.startsWith(PREFIX), preview.slice(0, 40));
    const bytes = Buffer.from(preview.slice(PREFIX.length), "base64");
    assert.equal(bytes.toString("base64"), preview.slice(PREFIX.length), "plain base64");
    assert.ok(bytes.length < 1024, `a few hundred bytes at most: ${bytes.length}`);
    const meta = await sharp(bytes).metadata();
    assert.equal(meta.format, "webp");
    assert.equal(Math.max(meta.width!, meta.height!), 32);
    assert.equal(meta.width! / meta.height!, 32 / 24, "the picture's aspect ratio");
    // Blurred: a plain resize of the same picture to the same size keeps far more detail.
    const plain = await detail(sharp(source).resize(meta.width, meta.height));
    const blurred = await detail(sharp(bytes));
    assert.ok(blurred < plain / 2, `blurred (${blurred.toFixed(1)} vs ${plain.toFixed(1)})`);
  });

  it("lists no preview for what is not a picture", async () => {
    const text = await uploadBytes(alice.http, "just text", { contentType: "text/plain" });
    const item = await listed(text);
    assert.ok(item, "listed");
    assert.equal(item.blur_preview, undefined);
  });

  it("lists no preview of quarantined media, and lists it again once released", async () => {
    const base = `/_synapse/admin/v1/media`;
    const q = await admin.http.post(`${base}/quarantine/${TEST_SERVER_NAME}/${picture}`, {});
    assert.equal(q.status, 200, q.text);
    const item = await listed(picture);
    assert.ok(item, "still listed");
    assert.equal(item.blur_preview, undefined);
    const u = await admin.http.post(`${base}/unquarantine/${TEST_SERVER_NAME}/${picture}`, {});
    assert.equal(u.status, 200, u.text);
    assert.ok((await previewOf(picture))?.startsWith(PREFIX));
  });
});
