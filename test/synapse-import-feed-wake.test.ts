/**
 * `mxcd import synapse` run beside a serving mxcd on PostgreSQL: the feed
 * records the import appends wake the server's long-polling readers through
 * the notification bus (docs/import.md, "Quarantine feed consumers").
 *
 * `notification_poll_interval` is one hour here, so only the import's NOTIFY
 * can end the long poll early: without it the poll would sit until its 60 s
 * timeout. The test has a time limit (`WOKEN`) far below that and far above
 * what the import needs, so a lost NOTIFY fails it by time-out (the pattern
 * of multi-process.test.ts); no timing is asserted.
 */
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import type { DatabaseConfig } from "../src/config/config-schema.js";
import { QUARANTINE_FEED_BACKFILL } from "../src/jobs/quarantine-feed-backfill-job.js";
import { runCli } from "./support/cli.js";
import { freshDatabaseConfig } from "./support/databases.js";
import { createSynapseFixture, type SynapseFixture } from "./support/synapse-fixture.js";
import { startTestServer, type TestServer } from "./support/test-server.js";

const FEED = "/_synapse/admin/v1/media/quarantine_changes";
const WOKEN = { timeout: 40_000 };

describe(
  "Synapse import wakes a running server's feed readers [postgres]",
  {
    skip: process.env.MXCD_TEST_POSTGRES_URL ? false : "needs PostgreSQL",
  },
  () => {
    let fixture: SynapseFixture;
    let database: DatabaseConfig;
    let server: TestServer;
    let admin: TestServer["http"];
    let from: number;

    before(async () => {
      // The default fixture has quarantined media Synapse's stream never reported.
      fixture = await createSynapseFixture("postgres", 94);
      database = await freshDatabaseConfig("postgres");
      server = await startTestServer("postgres", {
        database,
        media_store: { engine: "filesystem", path: fixture.mediaStore },
        notification_poll_interval: "1h",
      });
      admin = (await server.user("admin", { admin: true })).http;
      for (;;) {
        const jobs = await server.app.jobs.states();
        if (jobs.find((s) => s.name === QUARANTINE_FEED_BACKFILL)?.status === "done") break;
        await sleep(20);
      }
      const head = await admin.get(`${FEED}?from=0&limit=1000`);
      assert.equal(head.status, 200);
      from = head.body.next_batch;
    });

    after(() => server?.stop());

    it("a long poll waiting on the feed returns the import's records", WOKEN, async () => {
      // The reader waits (up to 60 s) for records after `from`.
      const poll = admin.get(`${FEED}?from=${from}&timeout=60000`);
      const dir = mkdtempSync(join(tmpdir(), "mxcd-import-wake-"));
      writeFileSync(
        join(dir, "mxcd.yaml"),
        JSON.stringify({
          server_name: "test.local",
          database,
          media_store: { engine: "filesystem", path: fixture.mediaStore },
          log_level: "silent",
        }),
      );
      const location = fixture.location as { postgres: string };
      const run = await runCli(
        ["import", "synapse", "--database", location.postgres, "--media-store", fixture.mediaStore],
        { cwd: dir },
      );
      assert.equal(run.code, 1, run.stderr); // the fixture has missing files on purpose
      const page = await poll;
      assert.equal(page.status, 200);
      assert.ok(page.body.changes.length > 0, "the long poll ended without the import's records");
      assert.ok(page.body.changes.every((c: { quarantined: boolean }) => c.quarantined));
    });
  },
);
