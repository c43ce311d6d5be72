import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { sql } from "kysely";
import { type App, createApp } from "../src/app.js";
import { MediaChanges } from "../src/cache/media-changes.js";
import type { DatabaseConfig } from "../src/config/config-schema.js";
import { validateConfig } from "../src/config/load-config.js";
import { createDatabase, type Database, type Engine, type Tx } from "../src/db/database.js";
import { InProcessNotificationBus } from "../src/db/in-process-notification-bus.js";
import { runMigrations } from "../src/db/migrate.js";
import type { BackgroundJob } from "../src/jobs/background-job.js";
import { JobRunner } from "../src/jobs/job-runner.js";
import {
  type BackfillProgress,
  QUARANTINE_FEED_BACKFILL,
  QuarantineFeedBackfillJob,
} from "../src/jobs/quarantine-feed-backfill-job.js";
import { createLogger } from "../src/logging/logger.js";
import { QuarantineService } from "../src/media/quarantine-service.js";
import {
  QuarantineCandidates,
  QuarantineRepository,
} from "../src/repositories/quarantine-repository.js";
import { forEachEngine, freshDatabaseConfig } from "./support/databases.js";
import { HttpClient } from "./support/http-client.js";

const SERVER = "test.local";
const FEED = "/_synapse/admin/v1/media/quarantine_changes?from=0&limit=1000";
const logger = createLogger("silent");

/** Writes media rows straight into the tables, as an import from another server would. */
async function importMedia(
  database: Database,
  local: [id: string, by: string | null][],
  remote: [origin: string, id: string, by: string | null][],
): Promise<void> {
  for (const [id, by] of local) {
    await database.db
      .insertInto("local_media_repository")
      .values({ media_id: id, created_ts: 1, quarantined_by: by, sha256: `sha-${id}` })
      .execute();
  }
  for (const [origin, id, by] of remote) {
    await database.db
      .insertInto("remote_media_cache")
      .values({
        media_origin: origin,
        media_id: id,
        created_ts: 1,
        filesystem_id: `fs-${id}`,
        last_access_ts: 1,
        quarantined_by: by,
        sha256: `sha-${origin}-${id}`,
      })
      .execute();
  }
}

/** Appends a feed record the way QuarantineService does (feed lock first). */
async function record(database: Database, origin: string | null, id: string, by: string) {
  const repository = new QuarantineRepository();
  await database.transaction(async (tx) => {
    await repository.lockFeed(tx);
    await repository.appendChanges(tx, [{ origin, mediaId: id, sha256: null }], by, 1);
  });
}

async function feedRows(database: Database) {
  const rows = await database.db
    .selectFrom("quarantined_media_changes")
    .selectAll()
    .orderBy("stream_id")
    .execute();
  return rows.map((r) => ({
    origin: r.origin,
    mediaId: r.media_id,
    quarantined: Boolean(r.quarantined),
    by: r.quarantined_by,
    sha256: r.sha256,
  }));
}

async function startApp(database: DatabaseConfig): Promise<{ app: App; admin: HttpClient }> {
  const config = validateConfig({
    server_name: SERVER,
    listen: { host: "127.0.0.1", port: 0 },
    database,
    media_store: {
      engine: "filesystem",
      path: join(mkdtempSync(join(tmpdir(), "mxcd-bf-")), "m"),
    },
    log_level: "silent",
    shutdown_grace_period: "2s",
  });
  const app = createApp(config, logger);
  const base = await app.start();
  const name = `admin${Math.random().toString(36).slice(2, 8)}`;
  const userId = await app.accounts.register({ localpart: name, password: "pw", admin: true });
  const session = await app.accounts.issueToken(userId, "DEV");
  return { app, admin: new HttpClient(base).withToken(session.accessToken) };
}

/** Polls the status endpoint until the backfill is done (the test's time limit bounds a hang). */
async function backfillDone(admin: HttpClient) {
  for (;;) {
    const { body } = await admin.get("/_synapse/admin/v1/background_updates/status");
    const job = body.jobs.find((j: { name: string }) => j.name === QUARANTINE_FEED_BACKFILL);
    if (job?.status === "done") return job;
    await sleep(10);
  }
}

forEachEngine("quarantine feed backfill", (engine: Engine) => {
  it("on an imported database, records each quarantined item without a record exactly once", async () => {
    const config = await freshDatabaseConfig(engine);
    const imported = createDatabase(config);
    await runMigrations(imported);
    await importMedia(
      imported,
      [
        ["L1", "@mod:elsewhere"],
        ["L2", null],
        ["L3", "system"],
        ["L4", "@mod:elsewhere"],
      ],
      [
        ["remote.example", "R1", "@mod:elsewhere"],
        ["remote.example", "R2", null],
        ["remote.example", "R3", "system"],
        ["another.example", "R4", "@other:elsewhere"],
      ],
    );
    await record(imported, null, "L3", "system");
    await record(imported, "remote.example", "R3", "system");
    await imported.close();

    const { app, admin } = await startApp(config);
    const job = await backfillDone(admin);
    assert.equal(job.processed, 8, "every row was visited");
    assert.equal(job.total, 8);
    const feed = await admin.get(FEED);
    assert.equal(feed.status, 200);
    const listed = feed.body.changes.map(
      (c: any) => `${c.origin}/${c.media_id} ${c.quarantined} ${c.quarantined_by} ${c.sha256}`,
    );
    assert.deepEqual(listed.slice(0, 2), [
      "test.local/L3 true system null",
      "remote.example/R3 true system null",
    ]);
    assert.deepEqual(listed.slice(2).sort(), [
      "another.example/R4 true @other:elsewhere sha-another.example-R4",
      "remote.example/R1 true @mod:elsewhere sha-remote.example-R1",
      "test.local/L1 true @mod:elsewhere sha-L1",
      "test.local/L4 true @mod:elsewhere sha-L4",
    ]);
    assert.equal(feed.body.next_batch, feed.body.changes.length + 1, "ids are gapless from 2");
    await app.stop();

    // A restart does not run the finished job again.
    const again = await startApp(config);
    const after = await again.admin.get(FEED);
    assert.equal(after.body.changes.length, 6);
    const status = await again.admin.get("/_synapse/admin/v1/background_updates/status");
    const state = status.body.jobs.find((j: any) => j.name === QUARANTINE_FEED_BACKFILL);
    assert.equal(state.completed_ts, job.completed_ts);
    await again.app.stop();
  });

  it("pages in small batches through both phases, and a racing release keeps the feed's last word right", async () => {
    const database = createDatabase(await freshDatabaseConfig(engine));
    await runMigrations(database);
    const local: [string, string | null][] = ["a", "b", "c", "d", "e"].map((id, i) => [
      id,
      i % 2 === 0 ? "@mod:x" : null,
    ]);
    await importMedia(database, local, [
      ["o1.example", "z", "@mod:x"],
      ["o2.example", "a", null],
      ["o2.example", "b", "@mod:x"],
    ]);
    const quarantine = new QuarantineService(
      SERVER,
      database,
      new QuarantineRepository(),
      new QuarantineCandidates(),
      new MediaChanges(new InProcessNotificationBus()),
    );
    // Released by an admin before the backfill reaches it: the release is recorded, nothing else.
    assert.equal(await quarantine.unquarantine({ local: ["a"], remote: [] }), 1);

    // The backfill's batch on local "c" holds the feed lock while an admin
    // releases "c": the release waits, then records after the backfill.
    const inner = new QuarantineFeedBackfillJob(new QuarantineRepository());
    const held = gate();
    let release: Promise<number> | undefined;
    const job: BackgroundJob<BackfillProgress> = {
      name: inner.name,
      initialProgress: inner.initialProgress,
      runBatch: async (tx: Tx, progress, ctx) => {
        const result = await inner.runBatch(tx, progress, ctx);
        if (progress.phase === "local" && progress.lastLocalMediaId === "b") {
          release = quarantine.unquarantine({ local: ["c"], remote: [] });
          held.open();
        }
        return result;
      },
    };
    const batches: number[] = [];
    await new JobRunner(
      database,
      [job],
      logger,
      { batchSize: 2, pauseMs: 0 },
      {
        committed: (s) => batches.push(s.processed),
      },
    ).run({ failFast: true });
    await held.promise;
    assert.equal(await release, 1);

    assert.deepEqual(batches, [2, 4, 5, 7, 8]);
    const feed = (await feedRows(database)).map(
      (r) => `${r.origin ?? SERVER}/${r.mediaId} ${r.quarantined}`,
    );
    // The release of "c" and the next batch race for the feed lock, so only
    // the order of each item's own records is fixed.
    assert.deepEqual(
      feed.filter((r) => r.startsWith("test.local/c ")),
      ["test.local/c true", "test.local/c false"],
    );
    assert.deepEqual([...feed].sort(), [
      "o1.example/z true",
      "o2.example/b true",
      "test.local/a false",
      "test.local/c false",
      "test.local/c true",
      "test.local/e true",
    ]);
    assert.equal(feed[0], "test.local/a false");
    await database.close();
  });

  it(
    "a batch waits for a release in flight and then records nothing for the released item",
    {
      skip: engine !== "postgres" && "SQLite runs one transaction at a time",
    },
    async () => {
      const database = createDatabase(await freshDatabaseConfig(engine));
      await runMigrations(database);
      await importMedia(database, [["c", "@mod:x"]], []);
      const repository = new QuarantineRepository();
      const inRelease = gate();
      const commit = gate();
      // An admin release, held open after its update and record.
      const release = database.transaction(async (tx) => {
        await repository.lockFeed(tx);
        const changed = await repository.updateLocal(tx, { ids: ["c"] }, null);
        await repository.appendChanges(tx, changed, null, 1);
        inRelease.open();
        await commit.promise;
      });
      await inRelease.promise;
      const job = new QuarantineFeedBackfillJob(repository);
      const run = new JobRunner(database, [job], logger, { pauseMs: 0 }).run({ failFast: true });
      // Wait until the batch is blocked on a lock (the feed lock). Its unlocked
      // scan saw "c" still quarantined with no record; had it acted on that
      // read instead of re-reading under the lock, it would append a stale
      // `true` after the release.
      while (!(await waitingOnLock(database))) await sleep(5);
      commit.open();
      await release;
      await run;
      const feed = await feedRows(database);
      assert.deepEqual(
        feed.map((r) => `${r.mediaId} ${r.quarantined}`),
        ["c false"],
      );
      await database.close();
    },
  );
});

/** True while some backend of this database waits for a lock. */
async function waitingOnLock(database: Database): Promise<boolean> {
  const { rows } = await sql<{ n: number }>`
    select count(*)::int as n from pg_stat_activity
    where datname = current_database() and wait_event_type = 'Lock'
  `.execute(database.db);
  return Number(rows[0]?.n) > 0;
}

function gate() {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { promise, open };
}
