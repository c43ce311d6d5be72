/**
 * Stored hashes end to end with the real PDQ hasher (the other hash tests
 * inject a fake one): an uploaded image gets exactly the hash `hashImage`
 * gives its bytes, a JPEG re-save of it lands within the match threshold,
 * and a flat image is stored as "no hash" with its reason.
 */
import assert from "node:assert/strict";
import { after, before, it } from "node:test";
import sharp from "sharp";
import { hammingDistance, PDQ_MATCH_THRESHOLD } from "../src/hashing/pdq.js";
import { hashImage } from "../src/hashing/pdq-image.js";
import { forEachEngine } from "./support/databases.js";
import { uploadBytes } from "./support/media.js";
import { startTestServer, type TestServer, type TestUser } from "./support/test-server.js";
import { waitFor } from "./support/wait-for.js";

/** A 240x180 picture with structure: gradients and a few shapes. */
async function picture(): Promise<Buffer> {
  const width = 240;
  const height = 180;
  const pixels = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = (y * width + x) * 3;
      const inBox = x > 40 && x < 120 && y > 30 && y < 110;
      const inDisc = (x - 170) ** 2 + (y - 120) ** 2 < 35 ** 2;
      pixels[i] = inBox ? 230 : (x * 255) / width;
      pixels[i + 1] = inDisc ? 20 : (y * 255) / height;
      pixels[i + 2] = ((x + y) * 3) % 256;
    }
  }
  return sharp(pixels, { raw: { width, height, channels: 3 } })
    .png()
    .toBuffer();
}

forEachEngine("stored hashes with the real PDQ hasher", (engine) => {
  let server: TestServer;
  let alice: TestUser;
  before(async () => {
    server = await startTestServer(engine);
    alice = await server.user("alice");
  });
  after(() => server?.stop());

  const stored = async (mediaId: string) => {
    await waitFor(async () => (await row(mediaId)).pdq_status !== null, `PDQ of ${mediaId}`);
    return row(mediaId);
  };
  const row = (mediaId: string) =>
    server.app.database.db
      .selectFrom("local_media_repository")
      .select(["pdq", "pdq_quality", "pdq_status", "pdq_reason"])
      .where("media_id", "=", mediaId)
      .executeTakeFirstOrThrow();

  it("stores the hash hashImage gives, and a JPEG re-save lands within the threshold", async () => {
    const png = await picture();
    const expected = await hashImage(png, { maxImagePixels: 32_000_000 });
    assert.ok(expected.hash !== null, "the test picture has a hash");
    const original = await stored(await uploadBytes(alice.http, png, { contentType: "image/png" }));
    assert.equal(original.pdq_status, "hashed");
    assert.equal(original.pdq, expected.hash);
    assert.equal(original.pdq_quality, expected.quality);

    const jpeg = await sharp(png).jpeg({ quality: 50 }).toBuffer();
    const resaved = await stored(
      await uploadBytes(alice.http, jpeg, { contentType: "image/jpeg" }),
    );
    assert.equal(resaved.pdq_status, "hashed");
    const distance = hammingDistance(original.pdq!, resaved.pdq!);
    assert.ok(distance <= PDQ_MATCH_THRESHOLD, `re-save distance ${distance}`);
  });

  it("stores a flat image as no hash, with the reason", async () => {
    const flat = await sharp({
      create: { width: 100, height: 100, channels: 3, background: { r: 90, g: 90, b: 90 } },
    })
      .png()
      .toBuffer();
    const result = await stored(await uploadBytes(alice.http, flat, { contentType: "image/png" }));
    assert.equal(result.pdq_status, "none");
    assert.equal(result.pdq, null);
    assert.match(result.pdq_reason ?? "", /quality/);
  });
});
