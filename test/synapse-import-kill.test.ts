/**
 * `mxcd import synapse` killed at any moment and re-run (docs/import.md), on
 * SQLite and PostgreSQL: the real CLI, as a child process, importing a bulk
 * Synapse fixture (test/support/synapse-bulk-fixture.ts, 6,000 rows, every
 * kind of row the 100,000-row one has; pages of 100 rows: 42 pages of local
 * media, 6 of remote), is killed with SIGKILL after its first committed
 * page, in the local phase, and after the first page of the remote phase
 * (five pages before the end; each point seen in the job's stored progress,
 * never after a fixed sleep, and each kill shown to land before the import
 * finished).
 * After every kill mxcd's rows are exactly what the stored tally counts
 * (no page half done); the re-run to completion reports the fixture's
 * counts with no duplicate and nothing missing, the quarantine feed has one
 * record per quarantined item, and a re-run of the finished import changes
 * no row.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { before, it } from "node:test";
import { createDatabase, type Engine } from "../src/db/database.js";
import { assertBuilt, CLI, runCli } from "./support/cli.js";
import { forEachEngine, freshDatabaseConfig } from "./support/databases.js";
import {
  assertExactlyTheFixture,
  bulkFixture,
  countsOf,
  expectedFeed,
  feedRecords,
  importedOf,
  importJob,
  mediaFingerprint,
  parseReport,
  rerunCounts,
  rowCounts,
  type Scale,
  skip,
  waitFor,
  withDatabase,
} from "./support/synapse-bulk-checks.js";

const ROWS = 6_000;
/** Small pages: as many pages (and kill points) as the default 500 gives 30,000 rows. */
const BATCH_SIZE = 100;

forEachEngine("Synapse import killed and re-run", (engine: Engine) => {
  let scale: Scale;

  before(async () => {
    if (skip) return;
    scale = await bulkFixture(engine, ROWS);
  });

  it(
    "the CLI killed (SIGKILL) at several points and re-run: no duplicate, nothing missing; a re-run changes nothing",
    { skip },
    async () => {
      assertBuilt();
      const { fixture, location } = scale;
      const config = await freshDatabaseConfig(engine);
      const dir = mkdtempSync(join(tmpdir(), "mxcd-import-kill-"));
      writeFileSync(
        join(dir, "mxcd.yaml"),
        JSON.stringify({
          server_name: "test.local",
          database: config,
          media_store: { engine: "filesystem", path: fixture.mediaStore },
          log_level: "silent",
        }),
      );
      const args = [
        "import",
        "synapse",
        ...("sqlite" in location
          ? ["--sqlite", location.sqlite]
          : ["--database", location.postgres]),
        "--media-store",
        fixture.mediaStore,
        "--batch-size",
        String(BATCH_SIZE),
      ];
      const sourceRows = fixture.localCount + fixture.remoteCount;
      // After the first committed page; in the local phase; after the first remote page.
      const killAt = [1, Math.round(sourceRows * 0.4), fixture.localCount + 1];
      const seen: number[] = [];
      // One connection watches the job's stored progress while the CLI runs.
      const watcher = createDatabase(config);
      try {
        for (const threshold of killAt) {
          const child = spawn(process.execPath, [CLI, ...args], { cwd: dir, stdio: "ignore" });
          const exited = once(child, "exit");
          await waitFor(
            async () => ((await importJob(watcher))?.processed ?? 0) >= threshold,
            child,
          );
          child.kill("SIGKILL");
          await exited;
          const job = (await importJob(watcher))!;
          assert.notEqual(
            job.status,
            "done",
            `the import finished before the kill at ${threshold}`,
          );
          seen.push(job.processed);
          // What committed is exactly what the stored progress counts: no page half done.
          const rows = await rowCounts(config);
          assert.deepEqual(rows, importedOf(job.progress.tally), `after the kill at ${threshold}`);
        }
        assert.ok(seen[0]! < seen[1]! && seen[1]! < seen[2]!, `kills at ${seen}`);
        assert.equal((await importJob(watcher))!.progress.phase, "remote");
      } finally {
        await watcher.close();
      }

      const finish = await runCli(args, { cwd: dir });
      assert.equal(finish.code, 1, finish.stderr); // 1: the fixture has missing files.
      assert.deepEqual(parseReport(finish.stdout), countsOf(fixture.expected));
      await assertExactlyTheFixture(config, scale);
      const jobs = await runCli(["jobs", "run", "--config", "mxcd.yaml"], { cwd: dir });
      assert.equal(jobs.code, 0, jobs.stderr);
      assert.deepEqual(await feedRecords(config), expectedFeed(fixture));

      // A finished import run again: a full pass that finds every row present, and changes none.
      const before = await mediaFingerprint(config);
      const again = await runCli(args, { cwd: dir });
      assert.equal(again.code, 1, again.stderr);
      assert.deepEqual(parseReport(again.stdout), rerunCounts(fixture.expected));
      assert.equal(await mediaFingerprint(config), before, "a re-run changed mxcd's media rows");
      assert.deepEqual(await feedRecords(config), expectedFeed(fixture));
      const job = (await withDatabase(config, importJob))!;
      assert.equal(job.status, "done");
      assert.equal(job.processed, sourceRows);
      assert.deepEqual(countsOf(job.progress.tally.counts), rerunCounts(fixture.expected));
    },
  );
});
