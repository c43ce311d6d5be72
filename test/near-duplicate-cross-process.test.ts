/**
 * Near-duplicate quarantine across two real processes on PostgreSQL
 * (docs/trust-and-safety.md "Near-duplicate quarantine"): a quarantine in
 * the second process finds the images whose hashes the first recorded after
 * the second built its similarity index (only its catch-up with the shared
 * hash log shows them), and an image the second process hashes is checked
 * there at once against a source the first recorded.
 */
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import sharp from "sharp";
import type { Database } from "../src/db/database.js";
import { hashImage } from "../src/hashing/pdq-image.js";
import { MediaHashRepository } from "../src/repositories/media-hash-repository.js";
import { HttpClient } from "./support/http-client.js";
import { uploadBytes } from "./support/media.js";
import { metric } from "./support/metrics.js";
import {
  ADMIN,
  assertFeedMatchesRows,
  BASE,
  D,
  feedOf,
  flip,
  serviceOn,
} from "./support/near-duplicate-model.js";
import { quarantinedByOf } from "./support/near-duplicate-servers.js";
import {
  type SecondProcess,
  startSecondProcess,
  stopSecondProcess,
} from "./support/second-process.js";
import { startTestServer, type TestServer } from "./support/test-server.js";
import { waitFor } from "./support/wait-for.js";

const hashed = (pdq: string) =>
  ({ pdq, pdq_status: "hashed", pdq_quality: 90, pdq_reason: null }) as const;

async function insertLocal(database: Database, mediaId: string): Promise<void> {
  await database.db
    .insertInto("local_media_repository")
    .values({
      media_id: mediaId,
      media_type: "image/png",
      media_length: 1,
      created_ts: Date.now(),
      user_id: "@u:test.local",
      sha256: randomBytes(32).toString("hex"),
    })
    .execute();
}

describe("near-duplicate quarantine, across processes [postgres]", () => {
  if (!process.env.MXCD_TEST_POSTGRES_URL) return;
  let server: TestServer;
  let second: SecondProcess | undefined;
  before(async () => {
    server = await startTestServer("postgres", {
      quarantine_similar: { pdq_max_distance: D },
      thumbnail_sizes: [],
    });
    // A second real `mxcd serve` on the same database, quarantining over HTTP.
    second = await startSecondProcess(server, { quarantine_similar: { pdq_max_distance: D } });
  });
  after(async () => {
    await stopSecondProcess(second);
    await server.stop();
  });

  it("a quarantine in the second process finds hashes the first recorded", async () => {
    // The second process built its similarity index during the test above;
    // these hashes reach it only by its catch-up with the shared hash log.
    const database = server.app.database;
    const { drain } = serviceOn(database, server);
    const hashes = new MediaHashRepository(database);
    const admin = await server.user("admin-cross", { admin: true });
    const viaSecond = new HttpClient(second!.base, admin.token);
    // A first quarantine of a hashed image makes the second process build its index now.
    await insertLocal(database, "warmSource");
    await hashes.record({ kind: "local", mediaId: "warmSource" }, hashed(flip(BASE, 200)));
    await drain.drain();
    assert.equal(
      (await viaSecond.post(`${ADMIN}/media/quarantine/test.local/warmSource`)).status,
      200,
    );
    for (let k = 0; k < 4; k++) {
      const base = createHash("sha256").update(`cross-${k}`).digest("hex");
      for (const [id, pdq] of [
        [`X${k}source`, base],
        [`X${k}near`, flip(base, D - k)],
      ] as const) {
        await insertLocal(database, id);
        await hashes.record({ kind: "local", mediaId: id }, hashed(pdq));
      }
      await drain.drain();
      const res = await viaSecond.post(`${ADMIN}/media/quarantine/test.local/X${k}source`);
      assert.equal(res.status, 200);
      assert.equal(await quarantinedByOf(database, `X${k}near`), admin.userId, `X${k}near taken`);
    }
    await assertFeedMatchesRows(database.db);
  });

  it("an image hashed by the second process is checked there against a source of the first", async () => {
    // A real image: the second process hashes with the real PDQ.
    const png = await sharp(randomBytes(64 * 64 * 3), {
      raw: { width: 64, height: 64, channels: 3 },
    })
      .png()
      .toBuffer();
    const real = await hashImage(png, { maxImagePixels: 1e8 });
    assert.ok(real.hash);
    const database = server.app.database;
    await insertLocal(database, "secondSource");
    await new MediaHashRepository(database).record(
      { kind: "local", mediaId: "secondSource" },
      hashed(flip(real.hash!, 2)),
    );
    const admin = await server.user("admin-second", { admin: true });
    await admin.http.post(`${ADMIN}/media/quarantine/test.local/secondSource`);
    const id = await uploadBytes(new HttpClient(second!.base, admin.token), png, {
      contentType: "image/png",
    });
    // Its queue counts the item hashed only once the check job has been
    // drained past its hash: quarantined by then, whenever the job's own
    // 30 s pass comes.
    await waitFor(
      async () =>
        (await metric(second!.base, "mxcd_media_hash_outcomes_total", 'outcome="hashed"')) >= 1,
      "hashed in the second",
    );
    assert.equal(await quarantinedByOf(database, id), "system", "checked in the second");
    assert.deepEqual(await feedOf(database.db, id), [[true, "system"]]);
    await assertFeedMatchesRows(database.db);
  });
});
