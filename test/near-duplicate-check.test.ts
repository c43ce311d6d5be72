/**
 * The `near-duplicate-check` job (docs/trust-and-safety.md "Near-duplicate
 * quarantine", docs/jobs.md), on SQLite and PostgreSQL:
 * - a hash recorded with no check after it (a process killed right after
 *   the backfill's batch committed) is checked when a server starts;
 * - `mxcd jobs run` checks what its backfill recorded;
 * - deleting media drops the provenance rows where it is the target.
 * The sweep: near-duplicate-sweep.test.ts; the remote release's feed
 * wake-up: near-duplicate-remote-wake.test.ts.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { after, it } from "node:test";
import sharp from "sharp";
import { createDatabase, type Database } from "../src/db/database.js";
import { hashImage } from "../src/hashing/pdq-image.js";
import { NEAR_DUPLICATE_CHECK } from "../src/jobs/near-duplicate-check-job.js";
import { MediaHashRepository } from "../src/repositories/media-hash-repository.js";
import { localContentKey } from "../src/storage/media-paths.js";
import { runCli } from "./support/cli.js";
import { forEachEngine } from "./support/databases.js";
import {
  ADMIN,
  assertFeedMatchesRows,
  BASE,
  D,
  feedOf,
  flip,
  INSIDE,
  WrittenPdqHasher,
} from "./support/near-duplicate-model.js";
import {
  quarantinedByOf,
  serverOn,
  sourcesOf,
  uploadHashed,
} from "./support/near-duplicate-servers.js";
import { asConfigText } from "./support/second-process.js";
import { startTestServer, type TestServer } from "./support/test-server.js";
import { waitFor } from "./support/wait-for.js";

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
    const source = await uploadHashed(a, admin, BASE);
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
      assert.equal(await quarantinedByOf(database, "crashedNear"), null);
    } finally {
      await database.close();
    }
    const b = await serverOn(engine, a, D, hasher);
    servers.push(b);
    const db = b.app.database;
    await waitFor(
      async () => (await quarantinedByOf(db, "crashedNear")) === "system",
      "checked at start",
    );
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
    // On a media folder whatever the suite's store: the CLI runs after the
    // server (and an s3rver of its own) has stopped.
    const a = await startTestServer(
      engine,
      {
        thumbnail_sizes: [],
        quarantine_similar: { pdq_max_distance: D },
        media_store: {
          engine: "filesystem",
          path: mkdtempSync(join(tmpdir(), "mxcd-neardup-cli-media-")),
        },
      },
      { appOptions: { pdqHasher: hasher.hash } },
    );
    servers.push(a);
    const admin = await a.user("admin", { admin: true });
    const source = await uploadHashed(a, admin, flip(real.hash!, 3));
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
        media_store: asConfigText(a.app.config.media_store),
        quarantine_similar: { pdq_max_distance: D },
        log_level: "warn",
      }),
    );
    const run = await runCli(["jobs", "run", "-c", config], { cwd: dir });
    assert.equal(run.code, 0, run.stderr);
    const check = createDatabase(a.app.config.database);
    try {
      assert.equal(await quarantinedByOf(check, "cliNear"), "system");
      assert.deepEqual(await sourcesOf(check, "cliNear"), [source]);
      assert.deepEqual(await feedOf(check.db, "cliNear"), [[true, "system"]]);
      await assertFeedMatchesRows(check.db);
    } finally {
      await check.close();
    }
    assert.match(run.stdout, /near-duplicate-check\s+running/);
  });

  it("drops a deleted item's provenance; a deleted source's targets stay held", async () => {
    const a = await serverOn(engine, undefined, D, hasher);
    servers.push(a);
    const admin = await a.user("admin", { admin: true });
    const source = await uploadHashed(a, admin, BASE);
    const target = await uploadHashed(a, admin, INSIDE);
    const other = await uploadHashed(a, admin, flip(BASE, 5, 100));
    await admin.http.post(`${ADMIN}/media/quarantine/test.local/${source}`);
    assert.deepEqual(await sourcesOf(a.app.database, target), [source]);
    assert.equal((await admin.http.delete(`${ADMIN}/media/test.local/${target}`)).status, 200);
    assert.deepEqual(await sourcesOf(a.app.database, target), [], "no row for a deleted target");
    // Deleting the source is no release (rule 8): its other target stays held, not a source.
    assert.equal((await admin.http.delete(`${ADMIN}/media/test.local/${source}`)).status, 200);
    assert.equal(await quarantinedByOf(a.app.database, other), admin.userId);
    assert.deepEqual(await sourcesOf(a.app.database, other), [source]);
    await stopAll();
  });
});
