/**
 * The `near-duplicate-check` job's sweep (docs/trust-and-safety.md
 * "Near-duplicate quarantine"), on SQLite and PostgreSQL: turning the
 * distance on, then raising it, takes the older images near quarantined
 * sources, once in the feed per transition, and an image an admin released
 * within the distance already checked stays released.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, it } from "node:test";
import type { Database, Engine } from "../src/db/database.js";
import { NEAR_DUPLICATE_CHECK } from "../src/jobs/near-duplicate-check-job.js";
import { forEachEngine } from "./support/databases.js";
import { uploadBytes } from "./support/media.js";
import { metric } from "./support/metrics.js";
import {
  ADMIN,
  assertFeedMatchesRows,
  BASE,
  D,
  feedOf,
  flip,
  image,
  WrittenPdqHasher,
} from "./support/near-duplicate-model.js";
import { startTestServer, type TestServer, type TestUser } from "./support/test-server.js";
import { waitFor } from "./support/wait-for.js";

const _FEED = `${ADMIN}/media/quarantine_changes`;
const _WOKEN = { timeout: 40_000 };

/** A server on `shared`'s database and store (a restart), or a fresh one. */
function serverOn(
  engine: Engine,
  shared: TestServer | undefined,
  distance: number | null,
  hasher: WrittenPdqHasher,
): Promise<TestServer> {
  return startTestServer(
    engine,
    {
      thumbnail_sizes: [],
      quarantine_similar: { pdq_max_distance: distance },
      ...(shared && {
        database: shared.app.config.database,
        media_store: shared.app.config.media_store,
      }),
    },
    { appOptions: { pdqHasher: hasher.hash } },
  );
}

/** Uploads an image with this fake PDQ; resolves once the queue has hashed it (and checked it). */
async function upload(server: TestServer, user: TestUser, pdq: string): Promise<string> {
  const before = await metric(server.baseUrl, "mxcd_media_hash_outcomes_total", 'outcome="hashed"');
  const id = await uploadBytes(user.http, image(pdq), { contentType: "image/png" });
  await waitFor(
    async () =>
      (await metric(server.baseUrl, "mxcd_media_hash_outcomes_total", 'outcome="hashed"')) > before,
    `PDQ of ${id}`,
  );
  return id;
}

async function byOf(database: Database, mediaId: string): Promise<string | null> {
  const row = await database.db
    .selectFrom("local_media_repository")
    .select("quarantined_by")
    .where("media_id", "=", mediaId)
    .executeTakeFirstOrThrow();
  return row.quarantined_by;
}

async function sourcesOf(database: Database, mediaId: string): Promise<string[]> {
  const rows = await database.db
    .selectFrom("quarantine_propagations")
    .select("source_media_id")
    .where("target_media_id", "=", mediaId)
    .orderBy("source_media_id")
    .execute();
  return rows.map((r) => r.source_media_id);
}

/** A local media row as stored before its hashes (old, so the backfill takes it). */
async function _insertUnhashed(database: Database, mediaId: string, length: number): Promise<void> {
  await database.db
    .insertInto("local_media_repository")
    .values({
      media_id: mediaId,
      media_type: "image/png",
      media_length: length,
      created_ts: 1,
      user_id: "@alice:test.local",
      sha256: randomBytes(32).toString("hex"),
    })
    .execute();
}

forEachEngine("near-duplicate sweep", (engine) => {
  const hasher = new WrittenPdqHasher();
  const servers: TestServer[] = [];
  const stopAll = async () => {
    for (const s of servers.splice(0)) await s.stop();
  };
  after(stopAll);

  it("sweeps older hashes when the distance is turned on, then raised", async () => {
    // Off: the quarantine of `source` takes nothing.
    const a = await serverOn(engine, undefined, null, hasher);
    servers.push(a);
    const admin = await a.user("admin", { admin: true });
    const source = await upload(a, admin, BASE);
    const near3 = await upload(a, admin, flip(BASE, 3));
    const near8 = await upload(a, admin, flip(BASE, 8));
    const far = await upload(a, admin, flip(BASE, 20));
    assert.equal(
      (await admin.http.post(`${ADMIN}/media/quarantine/test.local/${source}`)).status,
      200,
    );
    assert.equal(await byOf(a.app.database, near3), null);
    await stopAll();

    // On at 4: the sweep takes near3 (by `system`, held by source), not near8.
    const b = await serverOn(engine, a, 4, hasher);
    servers.push(b);
    await waitFor(async () => (await byOf(b.app.database, near3)) === "system", "sweep at 4");
    const done = async (server: TestServer, distance: number) => {
      const job = (await server.app.jobs.states()).find((s) => s.name === NEAR_DUPLICATE_CHECK);
      const p = job?.progress as { distance: number | null; sweep: unknown };
      return p.distance === distance && p.sweep === null;
    };
    await waitFor(() => done(b, 4), "sweep at 4 finished");
    assert.equal(await byOf(b.app.database, near8), null);
    assert.deepEqual(await sourcesOf(b.app.database, near3), [source]);
    // An admin releases near3 directly: within the distance already checked.
    const admin2 = await b.user("admin2", { admin: true });
    await admin2.http.post(`${ADMIN}/media/unquarantine/test.local/${near3}`);
    assert.equal(await byOf(b.app.database, near3), null);
    await stopAll();

    // Raised to 10: the sweep takes near8 only; near3 stays released.
    const c = await serverOn(engine, a, D, hasher);
    servers.push(c);
    await waitFor(async () => (await byOf(c.app.database, near8)) === "system", "sweep at 10");
    await waitFor(() => done(c, D), "sweep at 10 finished");
    const db = c.app.database.db;
    assert.equal(await byOf(c.app.database, near3), null, "released within 4 stays released");
    assert.equal(await byOf(c.app.database, far), null);
    assert.deepEqual(await feedOf(db, near3), [
      [true, "system"],
      [false, null],
    ]);
    assert.deepEqual(await feedOf(db, near8), [[true, "system"]]);
    assert.deepEqual(await feedOf(db, far), []);
    await assertFeedMatchesRows(db);
    await stopAll();
  });
});
