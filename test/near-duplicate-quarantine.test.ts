/**
 * Near-duplicate quarantine (docs/trust-and-safety.md "Near-duplicate
 * quarantine"), on SQLite and PostgreSQL:
 * - over HTTP with a fake hasher whose PDQ is written in the uploaded bytes:
 *   an admin's quarantine takes stored images just inside the distance and
 *   not those just outside or protected, each once in the feed; a later
 *   upload within the distance is quarantined by `system` (and the caches
 *   forget it); unquarantine releases exactly what was propagated; off by
 *   default nothing propagates;
 * - the random model test: test/near-duplicate-model.test.ts;
 * - several processes: test/near-duplicate-multiprocess.test.ts; the check
 *   job, the sweep and deletions: test/near-duplicate-check.test.ts.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { after, before, it } from "node:test";
import { MediaHashRepository } from "../src/repositories/media-hash-repository.js";
import { forEachEngine } from "./support/databases.js";
import type { HttpClient } from "./support/http-client.js";
import { download, quarantinedBy, uploadBytes } from "./support/media.js";
import { metric } from "./support/metrics.js";
import {
  ADMIN,
  assertFeedMatchesRows,
  BASE,
  D,
  FAR,
  feedOf,
  flip,
  INSIDE,
  image,
  OUTSIDE,
  REMOTE,
  WrittenPdqHasher,
} from "./support/near-duplicate-model.js";
import { startTestServer, type TestServer, type TestUser } from "./support/test-server.js";
import { waitFor } from "./support/wait-for.js";

forEachEngine("near-duplicate quarantine over HTTP", (engine) => {
  const hasher = new WrittenPdqHasher();
  let server: TestServer;
  let admin: TestUser;
  let alice: TestUser;

  before(async () => {
    server = await startTestServer(
      engine,
      { quarantine_similar: { pdq_max_distance: D }, thumbnail_sizes: [] },
      { appOptions: { pdqHasher: hasher.hash } },
    );
    admin = await server.user("admin", { admin: true });
    alice = await server.user("alice");
  });
  after(() => server.stop());

  const db = () => server.app.database.db;
  let uploaded = 0;
  /**
   * Uploads an image with this PDQ and waits until its hash and its
   * quarantine check are done: the queue counts an outcome only after both.
   */
  const upload = async (pdq: string) => {
    const id = await uploadBytes(alice.http, image(pdq), { contentType: "image/png" });
    uploaded += 1;
    await waitFor(
      async () =>
        (await metric(server.baseUrl, "mxcd_media_hash_outcomes_total", 'outcome="hashed"')) >=
        uploaded,
      `PDQ of ${id}`,
    );
    return id;
  };
  const post = (http: HttpClient, path: string) => http.post(`${ADMIN}${path}`);
  const remoteBy = async (id: string) =>
    (
      await db()
        .selectFrom("remote_media_cache")
        .select("quarantined_by")
        .where("media_id", "=", id)
        .executeTakeFirstOrThrow()
    ).quarantined_by;

  it("propagates to images within the distance, releases exactly them", async () => {
    const a = await upload(BASE);
    const inside = await upload(INSIDE);
    const outside = await upload(OUTSIDE);
    const far = await upload(FAR);
    const guarded = await upload(INSIDE);
    assert.equal((await post(admin.http, `/media/protect/${guarded}`)).status, 200);
    await db()
      .insertInto("remote_media_cache")
      .values({
        media_origin: REMOTE,
        media_id: "NearRemote",
        media_type: "image/png",
        media_length: 1,
        created_ts: Date.now(),
        upload_name: null,
        filesystem_id: "NearRemoteFile".padEnd(24, "x"),
        last_access_ts: Date.now(),
        authenticated: true,
        sha256: "ab".repeat(32),
      })
      .execute();
    // Its hash written as the hashing queue would (and so logged for the search).
    await new MediaHashRepository(server.app.database).record(
      { kind: "remote", origin: REMOTE, mediaId: "NearRemote" },
      { pdq: flip(BASE, D, 100), pdq_status: "hashed", pdq_quality: 90, pdq_reason: null },
    );
    // Nothing is quarantined yet, so hashing alone changed nothing.
    for (const id of [a, inside, outside, far, guarded]) {
      assert.equal(await quarantinedBy(server, id), null);
    }

    assert.equal((await post(admin.http, `/media/quarantine/test.local/${a}`)).status, 200);
    assert.equal(await quarantinedBy(server, a), admin.userId);
    assert.equal(await quarantinedBy(server, inside), admin.userId, "just inside: taken");
    assert.equal(await remoteBy("NearRemote"), admin.userId, "cached remote: taken");
    assert.equal(await quarantinedBy(server, outside), null, "just outside: left");
    assert.equal(await quarantinedBy(server, far), null);
    assert.equal(await quarantinedBy(server, guarded), null, "protected: left");
    assert.deepEqual(await feedOf(db(), inside), [[true, admin.userId]]);
    assert.deepEqual(await feedOf(db(), "NearRemote"), [[true, admin.userId]]);
    assert.deepEqual(await feedOf(db(), outside), []);

    // A later image within the distance: quarantined by `system` once its
    // hash arrives, and the metadata cache forgets its row (200, then 404).
    hasher.block();
    const late = await uploadBytes(alice.http, image(INSIDE), { contentType: "image/png" });
    uploaded += 1;
    assert.equal(
      (
        await download(server.baseUrl, `/_matrix/client/v1/media/download/test.local/${late}`, {
          token: alice.token,
        })
      ).status,
      200,
    );
    hasher.release();
    await waitFor(async () => (await quarantinedBy(server, late)) === "system", "late quarantine");
    assert.equal(
      (
        await download(server.baseUrl, `/_matrix/client/v1/media/download/test.local/${late}`, {
          token: alice.token,
        })
      ).status,
      404,
    );
    assert.deepEqual(await feedOf(db(), late), [[true, "system"]]);
    const lateOutside = await upload(OUTSIDE);
    assert.equal(await quarantinedBy(server, lateOutside), null);

    // Release: exactly what the quarantine propagated goes free.
    assert.equal((await post(admin.http, `/media/unquarantine/test.local/${a}`)).status, 200);
    for (const id of [a, inside, late]) assert.equal(await quarantinedBy(server, id), null, id);
    assert.equal(await remoteBy("NearRemote"), null);
    assert.deepEqual(await feedOf(db(), late), [
      [true, "system"],
      [false, null],
    ]);
    assert.deepEqual(await feedOf(db(), outside), []);
    await assertFeedMatchesRows(db());
  });

  it("keeps a directly quarantined target, and a target held by another source", async () => {
    // a and b are 12 apart (no propagation between them); target is 6 from
    // each; direct is 5 from a but 11 from target and 17 from b.
    const g = createHash("sha256").update("second family").digest("hex");
    const a = await upload(g);
    const b = await upload(flip(g, 12));
    const target = await upload(flip(g, 6));
    const direct = await upload(flip(g, 5, 100));
    await post(admin.http, `/media/quarantine/test.local/${a}`);
    assert.equal(await quarantinedBy(server, direct), admin.userId, "held by a");
    await post(admin.http, `/media/quarantine/test.local/${b}`);
    await post(admin.http, `/media/quarantine/test.local/${direct}`);
    assert.equal(await quarantinedBy(server, target), admin.userId);
    await post(admin.http, `/media/unquarantine/test.local/${a}`);
    assert.equal(await quarantinedBy(server, target), admin.userId, "still held by b");
    assert.equal(await quarantinedBy(server, direct), admin.userId, "quarantined directly");
    await post(admin.http, `/media/unquarantine/test.local/${b}`);
    assert.equal(await quarantinedBy(server, target), null, "no source left");
    assert.equal(await quarantinedBy(server, direct), admin.userId);
    await assertFeedMatchesRows(db());
  });
});

forEachEngine("near-duplicate quarantine off by default", (engine) => {
  const hasher = new WrittenPdqHasher();
  let server: TestServer;
  before(async () => {
    server = await startTestServer(
      engine,
      { thumbnail_sizes: [] },
      { appOptions: { pdqHasher: hasher.hash } },
    );
  });
  after(() => server.stop());

  it("propagates nothing", async () => {
    assert.equal(server.app.config.quarantine_similar.pdq_max_distance, null);
    const admin = await server.user("admin", { admin: true });
    const alice = await server.user("alice");
    const ids: string[] = [];
    for (const pdq of [BASE, BASE, INSIDE]) {
      ids.push(await uploadBytes(alice.http, image(pdq), { contentType: "image/png" }));
    }
    await waitFor(async () => {
      const rows = await server.app.database.db
        .selectFrom("local_media_repository")
        .select("pdq_status")
        .where("pdq_status", "is not", null)
        .execute();
      return rows.length === 3;
    }, "hashes");
    await admin.http.post(`${ADMIN}/media/quarantine/test.local/${ids[0]}`);
    assert.equal(await quarantinedBy(server, ids[1]!), null);
    assert.equal(await quarantinedBy(server, ids[2]!), null);
    const later = await uploadBytes(alice.http, image(BASE), { contentType: "image/png" });
    await waitFor(async () => {
      const row = await server.app.database.db
        .selectFrom("local_media_repository")
        .select("pdq_status")
        .where("media_id", "=", later)
        .executeTakeFirstOrThrow();
      return row.pdq_status !== null;
    }, "later hash");
    assert.equal(await quarantinedBy(server, later), null);
  });
});
