/**
 * An import page that will append quarantine feed records takes the feed's
 * lock before it inserts its rows (ImportPage.writeWithFeed), as an upload
 * does (QuarantineService.admitLocal). Inserting a row row-locks its user's
 * upload totals (migration 0019's triggers) until the page commits; an
 * upload of that user holds the feed's lock while it adds to the same
 * totals, so a page that locked the feed after its rows could deadlock with
 * it. Shown on PostgreSQL (SQLite's one connection has no lock order):
 * while another session holds the feed's lock, the page waits for it
 * holding no lock on the user's totals.
 */
import assert from "node:assert/strict";
import { after, before, it } from "node:test";
import { setTimeout as pause } from "node:timers/promises";
import pg from "pg";
import { createDatabase, type Database } from "../src/db/database.js";
import { runMigrations } from "../src/db/migrate.js";
import { ImportPage } from "../src/importer/import-page.js";
import { emptyTally } from "../src/importer/import-report.js";
import { ImportedMediaRepository } from "../src/repositories/imported-media-repository.js";
import { QuarantineRepository } from "../src/repositories/quarantine-repository.js";
import { forEachEngine, freshDatabaseConfig } from "./support/databases.js";

const USER = "@imported:test.local";
const ADMIN = "@admin:test.local";

forEachEngine("import page: the feed's lock before the rows' upload totals", (engine) => {
  if (engine !== "postgres") return;
  let database: Database;
  let url: string;
  const clients: pg.Client[] = [];
  const client = async () => {
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    clients.push(c);
    return c;
  };
  before(async () => {
    const config = await freshDatabaseConfig(engine);
    if (config.engine !== "postgres") throw new Error("unreachable");
    url = config.url;
    database = createDatabase(config);
    await runMigrations(database);
  });
  after(async () => {
    for (const c of clients) await c.end();
    await database.close();
  });

  it("waits for the feed's lock holding none of its user's totals", async () => {
    const ts = Date.now();
    // The user's totals rows for this minute, hour and day exist (an earlier upload).
    await database.db
      .insertInto("local_media_repository")
      .values({
        media_id: "earlier",
        media_type: "image/png",
        media_length: 100,
        created_ts: ts,
        user_id: USER,
        safe_from_quarantine: false,
        authenticated: true,
      })
      .execute();
    // Another session holds the feed's lock, as an upload between its lock and its commit.
    const holder = await client();
    await holder.query("begin");
    await holder.query("update quarantine_stream set position = position where id = 1");

    const page = new ImportPage();
    page.addLocal(
      {
        mediaId: "imported",
        mediaType: "image/png",
        mediaLength: 50,
        createdTs: ts,
        uploadName: null,
        userId: USER,
        quarantinedBy: ADMIN,
        lastAccessTs: null,
        safeFromQuarantine: false,
        authenticated: true,
        sha256: "ab".repeat(32),
      },
      "local",
      { origin: null, mediaId: "imported", sha256: "ab".repeat(32), quarantinedBy: ADMIN },
    );
    const tally = emptyTally();
    const writing = database.transaction((tx) =>
      page.writeWithFeed(tx, new ImportedMediaRepository(), new QuarantineRepository(), tally, ts),
    );

    // The page's transaction waits for a lock: the feed's, which only `holder` holds.
    const probe = await client();
    for (;;) {
      const { rows } = await probe.query<{ n: number }>(
        `select count(*)::int as n from pg_stat_activity
         where datname = current_database() and wait_event_type = 'Lock'`,
      );
      if (rows[0]!.n > 0) break;
      await pause(5);
    }
    await probe.query("begin");
    const locked = await probe
      .query("select bytes from local_media_upload_totals where user_id = $1 for update nowait", [
        USER,
      ])
      .then(
        () => false,
        (error: { code?: string }) => {
          if (error.code === "55P03") return true;
          throw error;
        },
      );
    await probe.query("rollback");
    assert.equal(
      locked,
      false,
      "the page holds its user's totals while it waits for the feed's lock (an upload would deadlock with it)",
    );

    await holder.query("commit");
    assert.equal(await writing, 1);
    const totals = await database.db
      .selectFrom("local_media_upload_totals")
      .select("bytes")
      .where("user_id", "=", USER)
      .execute();
    assert.deepEqual(
      totals.map((t) => Number(t.bytes)),
      [150, 150, 150],
    );
  });
});
