/**
 * A quarantine racing a new hash (docs/trust-and-safety.md "A quarantine
 * racing a new hash"), on SQLite and PostgreSQL, interleaved with hooks, no
 * sleeps:
 * - the admin's similarity search runs before the near image's hash is
 *   logged, and the check job checks that hash (its source not quarantined
 *   yet) before the admin's transaction: the transaction reads the log
 *   records its search missed, so the image is taken all the same;
 * - the hash is logged and checked while the admin's transaction holds the
 *   feed lock: the job's check waits for it and takes the image by `system`.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, it } from "node:test";
import { sql } from "kysely";
import type { Database, Db } from "../src/db/database.js";
import { createNearDuplicateCheck } from "../src/jobs/create-near-duplicate-check.js";
import {
  NearDuplicateQuarantine,
  type SimilarFinder,
  searchFinder,
} from "../src/media/near-duplicate-quarantine.js";
import { PdqSearchService } from "../src/media/pdq-search-service.js";
import { QuarantineService } from "../src/media/quarantine-service.js";
import { MediaHashRepository } from "../src/repositories/media-hash-repository.js";
import { PdqHashLogRepository } from "../src/repositories/pdq-hash-log-repository.js";
import { QuarantinePropagationRepository } from "../src/repositories/quarantine-propagation-repository.js";
import {
  QuarantineCandidates,
  QuarantineRepository,
} from "../src/repositories/quarantine-repository.js";
import { forEachEngine } from "./support/databases.js";
import {
  assertFeedMatchesRows,
  BASE,
  D,
  FAR,
  feedOf,
  flip,
  INSIDE,
  quiet,
  WrittenPdqHasher,
} from "./support/near-duplicate-model.js";
import {
  quarantinedByOf,
  serverOn,
  sourcesOf,
  uploadHashed,
} from "./support/near-duplicate-servers.js";
import type { TestServer } from "./support/test-server.js";
import { waitFor } from "./support/wait-for.js";

/** A second source far from BASE, and an image just inside the distance of it. */
const OTHER = FAR;
const OTHER_INSIDE = flip(FAR, D, 120);
/** A third source, far from both, and an image near it. */
const THIRD = flip(BASE, 100, 150);
const THIRD_INSIDE = flip(THIRD, D, 20);

/** Stores a local image row and records its PDQ (and log record), as the hashing queue does. */
async function admitHashed(database: Database, mediaId: string, pdq: string): Promise<void> {
  await admitUnhashed(database, mediaId);
  await recordPdq(database, mediaId, pdq);
}

/** Records the PDQ of a stored local image (and its log record), as the hashing queue does. */
async function recordPdq(database: Database, mediaId: string, pdq: string): Promise<void> {
  await new MediaHashRepository(database).record(
    { kind: "local", mediaId },
    { pdq, pdq_status: "hashed", pdq_quality: 90, pdq_reason: null },
  );
}

/** Stores a local image row whose hashes are not computed yet. */
async function admitUnhashed(database: Database, mediaId: string): Promise<void> {
  await database.db
    .insertInto("local_media_repository")
    .values({
      media_id: mediaId,
      media_type: "image/png",
      media_length: 1,
      created_ts: Date.now(),
      user_id: "@alice:test.local",
      sha256: randomBytes(32).toString("hex"),
    })
    .execute();
}

/**
 * The quarantine service and check job over `server`'s database, with hooks:
 * `afterSearch` runs once after the next similarity search returns (the
 * admin's plan), `inTransaction` once after the quarantine's first read of
 * the log's end inside its transaction (after the feed lock), `afterPlanRead`
 * once after the next read of a media row (the plan's read of the named one).
 */
function racingService(server: TestServer) {
  const database = server.app.database;
  const hooks: {
    afterSearch?: () => Promise<void>;
    inTransaction?: () => Promise<void>;
    afterPlanRead?: () => Promise<void>;
  } = {};
  const search = searchFinder(new PdqSearchService(new PdqHashLogRepository(database), "x"));
  const find: SimilarFinder = async (pdq, d) => {
    const found = await search(pdq, d);
    const hook = hooks.afterSearch;
    hooks.afterSearch = undefined;
    await hook?.();
    return found;
  };
  const provenance = new QuarantinePropagationRepository();
  const logEnd = provenance.logEnd.bind(provenance);
  provenance.logEnd = async (db: Db) => {
    const end = await logEnd(db);
    // Inside a transaction (`db` is not the database's own handle), once
    // the quarantine has read how far the log goes.
    if (db !== database.db && hooks.inTransaction) {
      const hook = hooks.inTransaction;
      hooks.inTransaction = undefined;
      await hook();
    }
    return end;
  };
  const read = provenance.read.bind(provenance);
  provenance.read = async (db, key) => {
    const row = await read(db, key);
    const hook = hooks.afterPlanRead;
    hooks.afterPlanRead = undefined;
    await hook?.();
    return row;
  };
  const rows = new QuarantineRepository();
  const near = new NearDuplicateQuarantine(D, find, provenance, rows);
  const service = new QuarantineService(
    "test.local",
    database,
    rows,
    new QuarantineCandidates(),
    server.app.mediaChanges,
    { notify() {} },
    Date.now,
    near,
  );
  const { drain } = createNearDuplicateCheck({
    database,
    near,
    quarantine: service,
    logger: quiet,
  });
  return { service, drain, hooks };
}

/** The check job's position in the PDQ hash log. */
async function checkedUpTo(database: Database): Promise<number> {
  const row = await database.db
    .selectFrom("background_jobs")
    .select("progress")
    .where("name", "=", "near-duplicate-check")
    .executeTakeFirstOrThrow();
  const progress = typeof row.progress === "string" ? JSON.parse(row.progress) : row.progress;
  return (progress as { position: number }).position;
}

forEachEngine("near-duplicate quarantine racing a new hash", (engine) => {
  const hasher = new WrittenPdqHasher();
  let server: TestServer;
  before(async () => {
    server = await serverOn(engine, undefined, D, hasher);
  });
  after(() => server.stop());

  it("takes an image whose hash the check job checked before the quarantine committed", async () => {
    const admin = await server.user("admin", { admin: true });
    const source = await uploadHashed(server, admin, BASE);
    const database = server.app.database;
    const { service, drain, hooks } = racingService(server);
    hooks.afterSearch = async () => {
      // After the admin's search, before its transaction: the near image
      // arrives and the job checks it while its source is still free.
      await admitHashed(database, "lateNear", INSIDE);
      await drain.drain();
      const logged = await new QuarantinePropagationRepository().logEnd(database.db);
      assert.ok((await checkedUpTo(database)) >= logged, "the job checked the late hash");
      assert.equal(await quarantinedByOf(database, "lateNear"), null);
    };
    assert.equal(await service.quarantine({ local: [source], remote: [] }, admin.userId), 2);
    assert.equal(hooks.afterSearch, undefined, "the hook ran");
    assert.equal(await quarantinedByOf(database, "lateNear"), admin.userId);
    assert.deepEqual(await sourcesOf(database, "lateNear"), [source]);
    assert.deepEqual(await feedOf(database.db, "lateNear"), [[true, admin.userId]]);
    await assertFeedMatchesRows(database.db);
  });

  it("takes the images near a named image whose own hash arrived during the quarantine", async () => {
    const admin = await server.user("admin3", { admin: true });
    const database = server.app.database;
    await admitHashed(database, "thirdNear", THIRD_INSIDE);
    await admitUnhashed(database, "thirdSource");
    const { service, drain, hooks } = racingService(server);
    hooks.afterPlanRead = async () => {
      // The plan found no PDQ; now it arrives and is checked while the image is still free.
      await recordPdq(database, "thirdSource", THIRD);
      await drain.drain();
      const logged = await new QuarantinePropagationRepository().logEnd(database.db);
      assert.ok((await checkedUpTo(database)) >= logged, "the job checked the late hash");
    };
    assert.equal(await service.quarantine({ local: ["thirdSource"], remote: [] }, admin.userId), 2);
    assert.equal(hooks.afterPlanRead, undefined, "the hook ran");
    assert.equal(await quarantinedByOf(database, "thirdNear"), admin.userId);
    assert.deepEqual(await sourcesOf(database, "thirdNear"), ["thirdSource"]);
    assert.deepEqual(await feedOf(database.db, "thirdNear"), [[true, admin.userId]]);
    await assertFeedMatchesRows(database.db);
  });

  it("the job's check of a hash logged during the quarantine waits for it", async () => {
    const admin = await server.user("admin2", { admin: true });
    const source = await uploadHashed(server, admin, OTHER);
    const database = server.app.database;
    const { service, drain, hooks } = racingService(server);
    let checked: Promise<void> | undefined;
    hooks.inTransaction = async () => {
      if (engine === "sqlite") {
        // One connection: the hash and its check queue behind the transaction.
        checked = admitHashed(database, "duringNear", OTHER_INSIDE).then(() => drain.drain());
        return;
      }
      // Another connection: the hash commits, and the job's check blocks on the feed lock.
      await admitHashed(database, "duringNear", OTHER_INSIDE);
      checked = drain.drain();
      await waitFor(async () => (await feedLockWaiters(database)) > 0, "the check waits");
    };
    assert.equal(await service.quarantine({ local: [source], remote: [] }, admin.userId), 1);
    assert.ok(checked, "the hook ran");
    await checked;
    assert.equal(await quarantinedByOf(database, "duringNear"), "system");
    assert.deepEqual(await sourcesOf(database, "duringNear"), [source]);
    assert.deepEqual(await feedOf(database.db, "duringNear"), [[true, "system"]]);
    await assertFeedMatchesRows(database.db);
  });
});

/** PostgreSQL sessions of this database waiting for a lock. */
async function feedLockWaiters(database: Database): Promise<number> {
  const { rows } = await sql<{ n: string }>`
    select count(*) as n from pg_stat_activity
    where datname = current_database() and wait_event_type = 'Lock'`.execute(database.db);
  return Number(rows[0]?.n ?? 0);
}
