/**
 * The `near-duplicate-check` job (docs/trust-and-safety.md "Near-duplicate
 * quarantine", docs/jobs.md), on SQLite and PostgreSQL:
 * - a hash recorded with no check after it (a process killed right after
 *   the backfill's batch committed) is checked when a server starts;
 * - `mxcd jobs run` checks what its backfill recorded;
 * - turning the distance on, then raising it, sweeps older hashes: once in
 *   the feed per transition, and an image an admin released within the
 *   distance already checked stays released;
 * - deleting media drops the provenance rows where it is the target;
 * - a remote item cached again unquarantined releases what it held and
 *   wakes a feed long poll (`notification_poll_interval` is an hour here,
 *   so only the wake-up can end the poll before the test's time limit).
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { after, before, it } from "node:test";
import sharp from "sharp";
import { createDatabase, type Database, type Engine } from "../src/db/database.js";
import { hashImage } from "../src/hashing/pdq-image.js";
import { NEAR_DUPLICATE_CHECK } from "../src/jobs/near-duplicate-check-job.js";
import { MediaHashRepository } from "../src/repositories/media-hash-repository.js";
import { localContentKey } from "../src/storage/media-paths.js";
import { runCli } from "./support/cli.js";
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
  INSIDE,
  image,
  WrittenPdqHasher,
} from "./support/near-duplicate-model.js";
import { freePort } from "./support/postgres-cluster.js";
import { startTestServer, type TestServer, type TestUser } from "./support/test-server.js";
import { waitFor } from "./support/wait-for.js";

const FEED = `${ADMIN}/media/quarantine_changes`;
const WOKEN = { timeout: 40_000 };

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
async function insertUnhashed(database: Database, mediaId: string, length: number): Promise<void> {
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

forEachEngine("near-duplicate check job", (engine) => {
  const hasher = new WrittenPdqHasher();
  const servers: TestServer[] = [];
  const stopAll = async () => {
    for (const s of servers.splice(0)) await s.stop();
  };
  after(stopAll);

  it("checks a hash recorded with no check after it when a server starts", async () => {
    const a = await serverOn(engine, undefined, D, hasher);
    servers.push(a);
    const admin = await a.user("admin", { admin: true });
    const source = await upload(a, admin, BASE);
    assert.equal(
      (await admin.http.post(`${ADMIN}/media/quarantine/test.local/${source}`)).status,
      200,
    );
    await stopAll();
    // What a process killed right after the backfill's batch committed leaves:
    // the hash (and its log record), no check.
    const database = createDatabase(a.app.config.database);
    try {
      await insertUnhashed(database, "crashedNear", 1);
      await new MediaHashRepository(database).record(
        { kind: "local", mediaId: "crashedNear" },
        { pdq: INSIDE, pdq_status: "hashed", pdq_quality: 90, pdq_reason: null },
      );
      assert.equal(await byOf(database, "crashedNear"), null);
    } finally {
      await database.close();
    }
    const b = await serverOn(engine, a, D, hasher);
    servers.push(b);
    const db = b.app.database;
    await waitFor(async () => (await byOf(db, "crashedNear")) === "system", "checked at start");
    assert.deepEqual(await sourcesOf(db, "crashedNear"), [source]);
    assert.deepEqual(await feedOf(db.db, "crashedNear"), [[true, "system"]]);
    await assertFeedMatchesRows(db.db);
    const job = (await b.app.jobs.states()).find((s) => s.name === NEAR_DUPLICATE_CHECK);
    assert.equal((job?.progress as { distance: number }).distance, D);
    await stopAll();
  });

  it("`mxcd jobs run` checks what its backfill hashed", async () => {
    // A real image (the CLI hashes with the real PDQ), and a source near its hash.
    const png = await sharp(randomBytes(64 * 64 * 3), {
      raw: { width: 64, height: 64, channels: 3 },
    })
      .png()
      .toBuffer();
    const real = await hashImage(png, { maxImagePixels: 1e8 });
    assert.ok(real.hash, "the test image has a PDQ");
    const a = await serverOn(engine, undefined, D, hasher);
    servers.push(a);
    const admin = await a.user("admin", { admin: true });
    const source = await upload(a, admin, flip(real.hash!, 3));
    assert.equal(
      (await admin.http.post(`${ADMIN}/media/quarantine/test.local/${source}`)).status,
      200,
    );
    await a.app.store.write(localContentKey("cliNear"), Readable.from([png]));
    await stopAll();
    const database = createDatabase(a.app.config.database);
    await insertUnhashed(database, "cliNear", png.length).finally(() => database.close());

    const dir = mkdtempSync(join(tmpdir(), "mxcd-neardup-cli-"));
    const config = join(dir, "mxcd.yaml");
    writeFileSync(
      config,
      JSON.stringify({
        server_name: "test.local",
        database: a.app.config.database,
        media_store: a.app.config.media_store,
        quarantine_similar: { pdq_max_distance: D },
        log_level: "warn",
      }),
    );
    const run = await runCli(["jobs", "run", "-c", config], { cwd: dir });
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /near-duplicate-check\s+running/);
    const check = createDatabase(a.app.config.database);
    try {
      assert.equal(await byOf(check, "cliNear"), "system");
      assert.deepEqual(await sourcesOf(check, "cliNear"), [source]);
      assert.deepEqual(await feedOf(check.db, "cliNear"), [[true, "system"]]);
      await assertFeedMatchesRows(check.db);
    } finally {
      await check.close();
    }
  });

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

  it("drops a deleted item's provenance; a deleted source's targets stay held", async () => {
    const a = await serverOn(engine, undefined, D, hasher);
    servers.push(a);
    const admin = await a.user("admin", { admin: true });
    const source = await upload(a, admin, BASE);
    const target = await upload(a, admin, INSIDE);
    const other = await upload(a, admin, flip(BASE, 5, 100));
    await admin.http.post(`${ADMIN}/media/quarantine/test.local/${source}`);
    assert.deepEqual(await sourcesOf(a.app.database, target), [source]);
    assert.equal((await admin.http.delete(`${ADMIN}/media/test.local/${target}`)).status, 200);
    assert.deepEqual(await sourcesOf(a.app.database, target), [], "no row for a deleted target");
    // Deleting the source is no release (rule 8): its other target stays held, not a source.
    assert.equal((await admin.http.delete(`${ADMIN}/media/test.local/${source}`)).status, 200);
    assert.equal(await byOf(a.app.database, other), admin.userId);
    assert.deepEqual(await sourcesOf(a.app.database, other), [source]);
    await stopAll();
  });
});

forEachEngine("near-duplicate release on a remote item cached again", (engine) => {
  const hasher = new WrittenPdqHasher();
  let a: TestServer;
  let b: TestServer;
  before(async () => {
    const [portA, portB] = [await freePort(), await freePort()];
    const resolvers = {
      "a.test": `http://127.0.0.1:${portA}`,
      "b.test": `http://127.0.0.1:${portB}`,
    };
    const common = { ip_range_whitelist: ["127.0.0.0/8"], federation_custom_resolvers: resolvers };
    b = await startTestServer(engine, {
      ...common,
      server_name: "b.test",
      listen: { host: "127.0.0.1", port: portB },
    });
    a = await startTestServer(
      engine,
      {
        ...common,
        server_name: "a.test",
        listen: { host: "127.0.0.1", port: portA },
        thumbnail_sizes: [],
        quarantine_similar: { pdq_max_distance: D },
        notification_poll_interval: "1h",
      },
      { appOptions: { pdqHasher: hasher.hash } },
    );
  });
  after(async () => {
    await a?.stop();
    await b?.stop();
  });

  it("wakes a feed long poll with the releases", WOKEN, async () => {
    const admin = await a.user("admin", { admin: true });
    const bob = await b.user("bob");
    const remote = await uploadBytes(bob.http, image(BASE), { contentType: "image/png" });
    const fetchRemote = () => admin.http.get(`/_matrix/client/v1/media/download/b.test/${remote}`);
    assert.equal((await fetchRemote()).status, 200);
    const target = await upload(a, admin, INSIDE);
    await waitFor(async () => {
      const row = await a.app.database.db
        .selectFrom("remote_media_cache")
        .select("pdq")
        .where("media_id", "=", remote)
        .executeTakeFirst();
      return row?.pdq === BASE;
    }, "remote PDQ");
    await admin.http.post(`${ADMIN}/media/quarantine/b.test/${remote}`);
    assert.equal(await byOf(a.app.database, target), admin.userId);
    // The cached copy goes (as a purge that ignored quarantine would), then is fetched again.
    await a.app.database.db
      .deleteFrom("remote_media_cache")
      .where("media_id", "=", remote)
      .execute();
    a.app.mediaChanges.publish({ kind: "remote", origin: "b.test", mediaId: remote });
    const head = await admin.http.get(`${FEED}?from=0&limit=1000`);
    const poll = admin.http.get(`${FEED}?from=${head.body.next_batch}&timeout=60000`);
    assert.equal((await fetchRemote()).status, 200);
    const page = await poll;
    assert.equal(page.status, 200);
    assert.deepEqual(
      page.body.changes.map((c: { media_id: string; quarantined: boolean }) => [
        c.media_id,
        c.quarantined,
      ]),
      [[target, false]],
    );
  });
});
