/**
 * `kill -9` of a real `mxcd media retention` process in the middle of its
 * pass (docs/media.md "Retention"), on SQLite and PostgreSQL, with the run's
 * media store. Wherever it died, afterwards every row whose original is
 * gone is one the job had marked (the stored progress lists it), and the
 * next run deletes everything that was due, leaving no row without its file
 * and no file without its row.
 */
import assert from "node:assert/strict";
import { once } from "node:events";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { after, before, it } from "node:test";
import type { RetentionCandidate } from "../src/repositories/media-retention-repository.js";
import { localContentKey } from "../src/storage/media-paths.js";
import { runCli, spawnCli, waitForOutput } from "./support/cli.js";
import { forEachEngine } from "./support/databases.js";
import { DAY, storeMismatches } from "./support/retention.js";
import { asConfigText } from "./support/second-process.js";
import { startTestServer, type TestServer } from "./support/test-server.js";

/** Enough old media for several batches (at most 100 items each). */
const ITEMS = 400;

forEachEngine("media retention: kill -9 mid-pass", (engine) => {
  let server: TestServer;
  let dir: string;

  before(async () => {
    server = await startTestServer(engine);
    dir = mkdtempSync(join(tmpdir(), "mxcd-retention-kill-"));
    const { config } = server.app;
    writeFileSync(
      join(dir, "mxcd.yaml"),
      JSON.stringify({
        server_name: config.server_name,
        database: config.database,
        media_store: asConfigText(config.media_store),
        media_retention: { local_media_lifetime: "30d" },
        log_level: "info",
      }),
    );
  });
  after(() => server?.stop());

  it("leaves only marked leftovers, and the next run finishes them", async () => {
    const created = Date.now() - 40 * DAY;
    const ids = Array.from({ length: ITEMS }, (_, i) => `killtest${String(i).padStart(5, "0")}`);
    await server.app.database.db
      .insertInto("local_media_repository")
      .values(
        ids.map((id) => ({
          media_id: id,
          media_type: "text/plain",
          media_length: 4,
          created_ts: created,
          user_id: "@owner:test.local",
          quarantined_by: null,
          url_cache: null,
          last_access_ts: null,
          safe_from_quarantine: false,
          authenticated: false,
        })),
      )
      .execute();
    for (const id of ids) {
      await server.app.store.write(localContentKey(id), Readable.from([Buffer.from("data")]));
    }

    const child = spawnCli(["media", "retention", "--config", "mxcd.yaml"], dir);
    await waitForOutput(child, (out) => out.includes("media retention deleted media"), 60_000);
    if (child.exitCode === null) {
      child.kill("SIGKILL");
      await once(child, "exit");
    }

    // Every row left without its original was marked by the job.
    const state = await server.app.database.db
      .selectFrom("background_jobs")
      .select("progress")
      .where("name", "=", "media-retention")
      .executeTakeFirstOrThrow();
    const progress = (
      typeof state.progress === "string" ? JSON.parse(state.progress) : state.progress
    ) as { marked: RetentionCandidate[] };
    const marked = new Set(progress.marked.map((m) => localContentKey(m.mediaId)));
    const leftovers = await storeMismatches(server);
    const rowsLeft = await server.app.database.db
      .selectFrom("local_media_repository")
      .select("media_id")
      .where("media_id", "in", ids)
      .execute();
    assert.ok(rowsLeft.length > 0, "killed before the pass ended");
    for (const problem of leftovers) {
      const key = problem.replace(/^row without file: /, "");
      assert.ok(problem.startsWith("row without file: ") && marked.has(key), problem);
    }

    const rerun = await runCli(["media", "retention", "--config", "mxcd.yaml"], { cwd: dir });
    assert.equal(rerun.code, 0, rerun.stderr);
    const left = await server.app.database.db
      .selectFrom("local_media_repository")
      .select("media_id")
      .where("media_id", "in", ids)
      .execute();
    assert.deepEqual(left, []);
    assert.deepEqual(await storeMismatches(server), []);
  });
});
