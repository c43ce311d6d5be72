import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { sql } from "kysely";
import { createDatabase, type Database, type Engine, type Tx } from "../src/db/database.js";
import { runMigrations } from "../src/db/migrate.js";
import type { BackgroundJob, BatchContext } from "../src/jobs/background-job.js";
import { type JobObserver, JobRunner, type JobRunnerOptions } from "../src/jobs/job-runner.js";
import { createLogger } from "../src/logging/logger.js";
import type { JobState } from "../src/repositories/job-repository.js";
import { runCli } from "./support/cli.js";
import { forEachEngine, freshDatabaseConfig } from "./support/databases.js";
import { startTestServer, type TestServer, type TestUser } from "./support/test-server.js";

const STATUS = "/_synapse/admin/v1/background_updates/status";
const ITEMS = 100;
const logger = createLogger("silent");

/** A promise with its resolve function, for gating a job from the test. */
function gate<T = void>() {
  let open!: (value: T) => void;
  const promise = new Promise<T>((resolve) => {
    open = resolve;
  });
  return { promise, open };
}

/**
 * Counts items 0..ITEMS-1 in a scratch table, `batchSize` per batch, inside
 * the batch transaction: after the job every hit count must be exactly 1.
 * `hook` runs at the start of each batch (to gate, fail or abort it).
 */
class CountingJob implements BackgroundJob<{ next: number }> {
  readonly initialProgress = { next: 0 };
  calls = 0;
  active = 0;
  maxActive = 0;
  constructor(
    readonly name: string,
    private readonly hook: (
      call: number,
      next: number,
      ctx: BatchContext,
    ) => Promise<void> = async () => {},
    private readonly shared: { active: number; maxActive: number } = { active: 0, maxActive: 0 },
  ) {}

  get overlap() {
    return this.shared.maxActive;
  }

  async estimateTotal() {
    return ITEMS;
  }

  async runBatch(tx: Tx, progress: { next: number }, ctx: BatchContext) {
    this.calls += 1;
    this.shared.active += 1;
    this.shared.maxActive = Math.max(this.shared.maxActive, this.shared.active);
    try {
      await this.hook(this.calls, progress.next, ctx);
      const end = Math.min(progress.next + ctx.batchSize, ITEMS);
      await sql`update job_test_items set hits = hits + 1 where id >= ${progress.next} and id < ${end}`.execute(
        tx,
      );
      return { progress: { next: end }, processed: end - progress.next, done: end >= ITEMS };
    } finally {
      this.shared.active -= 1;
    }
  }
}

async function scratchDatabase(
  engine: Engine,
): Promise<{ database: Database; reopen: () => Database }> {
  const config = await freshDatabaseConfig(engine);
  const database = createDatabase(config);
  await runMigrations(database);
  await sql`create table job_test_items (id integer primary key, hits integer not null)`.execute(
    database.db,
  );
  for (let id = 0; id < ITEMS; id++) {
    await sql`insert into job_test_items (id, hits) values (${id}, 0)`.execute(database.db);
  }
  return { database, reopen: () => createDatabase(config) };
}

async function hits(database: Database): Promise<number[]> {
  const { rows } = await sql<{ hits: number }>`select hits from job_test_items order by id`.execute(
    database.db,
  );
  return rows.map((r) => Number(r.hits));
}

async function stateOf(runner: JobRunner, name: string): Promise<JobState> {
  const state = (await runner.states()).find((s) => s.name === name);
  assert.ok(state, name);
  return state;
}

const FAST: Partial<JobRunnerOptions> = { batchSize: 10, pauseMs: 0, retryMs: 1, busyRetryMs: 1 };

/** A runner whose observer resolves `done` when the job named `name` finishes. */
function runnerFor(database: Database, job: BackgroundJob, observer: JobObserver = {}) {
  const done = gate<JobState>();
  const runner = new JobRunner(database, [job], logger, FAST, {
    ...observer,
    committed(state) {
      observer.committed?.(state);
      if (state.status === "done") done.open(state);
    },
  });
  return { runner, done: done.promise };
}

forEachEngine("background job runner", (engine) => {
  it("saves progress per batch; a stop mid-batch rolls it back; a restart resumes, each item once", async () => {
    const { database, reopen } = await scratchDatabase(engine);
    const fourth = gate();
    const job = new CountingJob("counting", async (call, _next, { signal }) => {
      if (call !== 4) return;
      fourth.open();
      // Batch 4 is in flight when the runner stops: it gives up, rolling back.
      await new Promise((resolve) => signal.addEventListener("abort", resolve, { once: true }));
      throw new Error("aborted");
    });
    const first = new JobRunner(database, [job], logger, FAST);
    await first.start();
    await fourth.promise;
    await first.stop();
    await first.stop(); // idempotent

    const stopped = await stateOf(first, "counting");
    assert.equal(stopped.status, "running");
    assert.equal(stopped.processed, 30);
    assert.deepEqual(stopped.progress, { next: 30 });
    assert.equal(stopped.total, ITEMS);
    assert.equal(stopped.lastError, null, "an abort is not a failure");
    assert.deepEqual(await hits(database), [...Array(30).fill(1), ...Array(70).fill(0)]);
    await database.close();

    // "Restart": a new database handle and runner resume at item 30.
    const again = reopen();
    const resumed = new CountingJob("counting");
    const { runner, done } = runnerFor(again, resumed);
    await runner.start();
    const final = await done;
    await runner.stop();
    assert.equal(resumed.calls, 7);
    assert.equal(final.processed, ITEMS);
    assert.equal(final.status, "done");
    assert.ok(final.completedTs !== null && final.startedTs !== null);
    assert.deepEqual(await hits(again), Array(ITEMS).fill(1));

    // Done jobs are never run again.
    const later = new CountingJob("counting");
    await new JobRunner(again, [later], logger, FAST).run();
    assert.equal(later.calls, 0);
    await again.close();
  });

  it("retries a failing batch after a back-off and records last_error", async () => {
    const { database } = await scratchDatabase(engine);
    const failures: string[] = [];
    let failed = 0;
    const job = new CountingJob("flaky", async (_call, next) => {
      if (next === 20 && failed < 2) {
        failed += 1;
        throw new Error(`boom ${failed}`);
      }
    });
    const runner = new JobRunner(database, [job], logger, FAST, {
      failed: (_name, error) => failures.push((error as Error).message),
    });
    await runner.run();
    const state = await stateOf(runner, "flaky");
    assert.deepEqual(failures, ["boom 1", "boom 2"]);
    assert.equal(state.status, "done");
    assert.equal(state.processed, ITEMS);
    assert.equal(state.lastError, "boom 2");
    assert.deepEqual(await hits(database), Array(ITEMS).fill(1));

    // failFast (`mxcd jobs run`) throws the first failure instead, after recording it.
    const strict = new JobRunner(
      database,
      [new CountingJob("strict", async () => Promise.reject(new Error("nope")))],
      logger,
      FAST,
    );
    await assert.rejects(strict.run({ failFast: true }), /nope/);
    assert.equal((await stateOf(strict, "strict")).lastError, "nope");
    await database.close();
  });

  it(
    "two runners on two connections pools never overlap a job's batches; each item is done once",
    {
      skip: engine !== "postgres" && "advisory locks are PostgreSQL's",
      timeout: 60_000,
    },
    async () => {
      const { database, reopen } = await scratchDatabase(engine);
      const other = reopen();
      const shared = { active: 0, maxActive: 0 };
      const held = gate();
      const entered = gate();
      const a = new CountingJob(
        "shared",
        async (call) => {
          if (call === 1) {
            entered.open();
            await held.promise; // A holds the job's lock until B has been turned away
          }
        },
        shared,
      );
      const b = new CountingJob("shared", async () => {}, shared);
      const busy = gate();
      const runnerA = new JobRunner(database, [a], logger, FAST);
      const runnerB = new JobRunner(other, [b], logger, FAST, { busy: () => busy.open() });
      const runA = runnerA.run();
      await entered.promise;
      const runB = runnerB.run();
      await busy.promise;
      held.open();
      await Promise.all([runA, runB]);
      assert.equal(shared.maxActive, 1, "batches of one job never overlap");
      assert.deepEqual(await hits(database), Array(ITEMS).fill(1));
      const state = await stateOf(runnerA, "shared");
      assert.equal(state.processed, ITEMS);
      assert.equal(state.status, "done");
      await other.close();
      await database.close();
    },
  );
});

forEachEngine("background jobs in the server", (engine) => {
  let server: TestServer;
  let admin: TestUser;
  let alice: TestUser;
  const hold = gate();
  const entered = gate();
  const finished = gate();
  let finishedBeforeStart = true;

  before(
    async () => {
      const slow: BackgroundJob<null> = {
        name: "slow-test-job",
        initialProgress: null,
        async runBatch() {
          entered.open();
          await hold.promise;
          return { progress: null, processed: 1, done: true, committed: () => finished.open() };
        },
      };
      let slowDone = false;
      void finished.promise.then(() => {
        slowDone = true;
      });
      // Resolves with the slow job's gate still shut (were start-up to wait
      // for the job, this would never resolve and the hook would time out).
      server = await startTestServer(engine, {}, { beforeStart: (app) => app.jobs.register(slow) });
      finishedBeforeStart = slowDone;
      await entered.promise;
      hold.open();
      await finished.promise;
      admin = await server.user("admin", { admin: true });
      alice = await server.user("alice");
    },
    { timeout: 60_000 },
  );
  after(() => server.stop());

  it("start() resolves while a background job is still running", () => {
    assert.equal(finishedBeforeStart, false);
  });

  it("GET background_updates/status: 401, 403, then Synapse's shape plus `jobs`", async () => {
    const none = await server.http.get(STATUS);
    assert.equal(none.status, 401);
    assert.equal(none.body.errcode, "M_MISSING_TOKEN");
    const user = await alice.http.get(STATUS);
    assert.equal(user.status, 403);
    assert.equal(user.body.errcode, "M_FORBIDDEN");

    const idle = await admin.http.get(STATUS);
    assert.equal(idle.status, 200);
    assert.equal(idle.body.enabled, true);
    assert.deepEqual(idle.body.current_updates, {});
    const names = idle.body.jobs.map((j: { name: string }) => j.name);
    assert.deepEqual(names, [
      "quarantine-feed-backfill",
      "media-hash-backfill",
      "near-duplicate-check",
      "blur-preview-backfill",
      "slow-test-job",
    ]);
    for (const job of idle.body.jobs) {
      assert.deepEqual(Object.keys(job).sort(), [
        "completed_ts",
        "last_error",
        "name",
        "processed",
        "started_ts",
        "status",
        "total",
        "updated_ts",
      ]);
      // The recurring jobs never finish, and are no current update.
      const recurring = ["media-hash-backfill", "near-duplicate-check", "blur-preview-backfill"];
      if (recurring.includes(job.name)) {
        assert.notEqual(job.status, "done");
      } else assert.equal(job.status, "done");
    }

    // A job in progress (stored by any process) is the current update.
    await server.app.database.db
      .insertInto("background_jobs")
      .values({
        name: "other-job",
        status: "running",
        progress: "{}",
        processed: 40,
        duration_ms: 20,
        started_ts: 1,
        updated_ts: Date.now(),
      })
      .execute();
    const busy = await admin.http.get(STATUS);
    assert.deepEqual(busy.body.current_updates, {
      master: {
        name: "other-job",
        total_item_count: 40,
        total_duration_ms: 20,
        average_items_per_ms: 2,
      },
    });
    assert.equal(
      busy.body.jobs.find((job: { name: string }) => job.name === "other-job").status,
      "running",
    );
  });
});

describe("mxcd jobs (CLI)", () => {
  it("`jobs` lists the backfill as pending; `jobs run` finishes it; `jobs` then shows it done", async () => {
    const dir = mkdtempSync(join(tmpdir(), "mxcd-jobs-cli-"));
    const config = join(dir, "mxcd.yaml");
    writeFileSync(
      config,
      'server_name: "cli.test"\nregistration_shared_secret: "s"\nlog_level: warn\n',
    );
    assert.equal((await runCli(["migrate", "-c", config], { cwd: dir })).code, 0);
    const database = createDatabase({ engine: "sqlite", path: join(dir, "data", "mxcd.sqlite") });
    for (const [id, by] of [
      ["a", "@x:cli.test"],
      ["b", null],
      ["c", "system"],
    ] as const) {
      await database.db
        .insertInto("local_media_repository")
        .values({ media_id: id, created_ts: 1, quarantined_by: by, sha256: `sha-${id}` })
        .execute();
    }
    await database.close();

    const help = await runCli(["--help"]);
    assert.match(help.stdout, /\bjobs\b/);
    const before = await runCli(["jobs", "-c", config], { cwd: dir });
    assert.equal(before.code, 0, before.stderr);
    assert.match(before.stdout, /quarantine-feed-backfill\s+pending\s+\[-+\]\s+\?%\s+0\/\?/);

    const run = await runCli(["jobs", "run", "-c", config], { cwd: dir });
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /quarantine-feed-backfill\s+done\s+\[#+\]\s+100%\s+3\/3/);

    const after = await runCli(["jobs", "-c", config], { cwd: dir });
    assert.match(after.stdout, /quarantine-feed-backfill\s+done\s+\[#{30}\]\s+100%\s+3\/3/);
    const check = createDatabase({ engine: "sqlite", path: join(dir, "data", "mxcd.sqlite") });
    const records = await check.db.selectFrom("quarantined_media_changes").selectAll().execute();
    await check.close();
    assert.deepEqual(records.map((r) => r.media_id).sort(), ["a", "c"]);
  });
});
