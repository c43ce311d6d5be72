/**
 * `pdq_decode_min_side` end to end: unset, a stored hash is the exact
 * full-resolution one (HMA's); set, the server stores the hash of the
 * bounded shrink-on-load decode — the option reaches the hasher. Values
 * under 512 are refused by the config (measured drift beyond the PDQ port
 * rule, bench/README.md "PDQ decode trade-off").
 */
import assert from "node:assert/strict";
import { after, before, it } from "node:test";
import { ConfigError, parseConfigText } from "../src/config/load-config.js";
import { hammingDistance } from "../src/hashing/pdq.js";
import { hashImage } from "../src/hashing/pdq-image.js";
import { forEachEngine } from "./support/databases.js";
import { uploadBytes } from "./support/media.js";
import { photoLike } from "./support/photo-like.js";
import { startTestServer, type TestServer } from "./support/test-server.js";
import { waitFor } from "./support/wait-for.js";

const MAX = 32 * 1024 * 1024;

it("pdq_decode_min_side: null by default, 512 or more, or refused", () => {
  const base = 'server_name: "example.org"\n';
  assert.equal(parseConfigText(base).pdq_decode_min_side, null);
  assert.equal(parseConfigText(`${base}pdq_decode_min_side: 1024\n`).pdq_decode_min_side, 1024);
  for (const bad of ["256", "0", "-1", "1024.5", '"1024"']) {
    assert.throws(
      () => parseConfigText(`${base}pdq_decode_min_side: ${bad}\n`),
      (error: unknown) => error instanceof ConfigError && /pdq_decode_min_side/.test(String(error)),
      bad,
    );
  }
});

forEachEngine("pdq_decode_min_side reaches the stored hash", (engine) => {
  let exactServer: TestServer;
  let cheapServer: TestServer;
  let jpeg: Buffer;
  let exact: string;
  let cheap: string;
  before(async () => {
    // 2048×1536 at min side 512: decoded at 1/2 (1024×768) by libjpeg.
    jpeg = await (await photoLike(2048, 1536, 11)).jpeg({ quality: 85 }).toBuffer();
    const e = await hashImage(jpeg, { maxImagePixels: MAX });
    const c = await hashImage(jpeg, { maxImagePixels: MAX, decodeMinSide: 512 });
    assert.ok(e.hash !== null && c.hash !== null);
    exact = e.hash;
    cheap = c.hash;
    // The precondition that makes the test able to fail: the two differ.
    assert.ok(hammingDistance(exact, cheap) > 0, "the cheap decode moves this image's hash");
    exactServer = await startTestServer(engine);
    cheapServer = await startTestServer(engine, { pdq_decode_min_side: 512 });
  });
  after(async () => {
    await exactServer?.stop();
    await cheapServer?.stop();
  });

  const storedPdq = async (server: TestServer) => {
    const alice = await server.user("alice");
    const mediaId = await uploadBytes(alice.http, jpeg, { contentType: "image/jpeg" });
    const row = () =>
      server.app.database.db
        .selectFrom("local_media_repository")
        .select(["pdq", "pdq_status"])
        .where("media_id", "=", mediaId)
        .executeTakeFirstOrThrow();
    await waitFor(async () => (await row()).pdq_status !== null, `PDQ of ${mediaId}`);
    return (await row()).pdq;
  };

  it("unset: the exact full-resolution hash", async () => {
    assert.equal(await storedPdq(exactServer), exact);
  });

  it("512: the hash of the 1/2-scale decode, within 10 bits of the exact one", async () => {
    const pdq = await storedPdq(cheapServer);
    assert.equal(pdq, cheap);
    assert.ok(hammingDistance(pdq!, exact) <= 10);
  });
});
