/**
 * `mxcd import synapse` at 100,000 rows (docs/import.md), on SQLite and
 * PostgreSQL: a bulk Synapse fixture (test/support/synapse-bulk-fixture.ts:
 * 70% local media, 15% local thumbnails, 10% remote media, 5% remote
 * thumbnails; quarantined, protected, `/create`d rows and missing files)
 * imported in reference mode. The report equals the fixture's counts,
 * every imported row is in mxcd exactly once (the id lists compared, not
 * only counted), a sample downloads with its bytes and headers,
 * quarantined media answers 404, and the quarantine feed has one record
 * per quarantined item.
 *
 * The source is the other engine where possible (PostgreSQL source into
 * SQLite mxcd, SQLite source into PostgreSQL mxcd), so both source readers
 * run at scale. The kill-and-resume test is test/synapse-import-kill.test.ts
 * (its own file: each file has the runner's time-out to itself).
 */
import assert from "node:assert/strict";
import { before, it } from "node:test";
import { createDatabase, type Engine } from "../src/db/database.js";
import { runMigrations } from "../src/db/migrate.js";
import { IMPORT_KINDS } from "../src/importer/import-report.js";
import { runSynapseImport } from "../src/importer/synapse-import.js";
import { openSynapseSource, sourceIdentity } from "../src/importer/synapse-source.js";
import { createLogger } from "../src/logging/logger.js";
import { forEachEngine, freshDatabaseConfig } from "./support/databases.js";
import { download } from "./support/media.js";
import {
  assertExactlyTheFixture,
  bulkFixture,
  countsOf,
  expectedFeed,
  feedRecords,
  type Scale,
  skip,
  waitFor,
  withDatabase,
} from "./support/synapse-bulk-checks.js";
import { bulkFileBytes, bulkThumbnailBytes } from "./support/synapse-bulk-fixture.js";
import { startTestServer } from "./support/test-server.js";

const ROWS = 100_000;

forEachEngine("Synapse import at 100,000 rows", (engine: Engine) => {
  let scale: Scale;
  const sourceEngine: Engine =
    engine === "sqlite" && process.env.MXCD_TEST_POSTGRES_URL ? "postgres" : "sqlite";

  before(async () => {
    if (skip) return;
    scale = await bulkFixture(sourceEngine, ROWS);
    assert.equal(scale.fixture.rows, ROWS);
  });

  it(
    `imports ${ROWS} rows from ${sourceEngine} once each, serves them, keeps quarantine`,
    { skip },
    async () => {
      const { fixture, location } = scale;
      const config = await freshDatabaseConfig(engine);
      const database = createDatabase(config);
      const source = await openSynapseSource(location);
      let result: Awaited<ReturnType<typeof runSynapseImport>>;
      try {
        await runMigrations(database);
        result = await runSynapseImport({
          database,
          source,
          mediaStorePath: fixture.mediaStore,
          sourceIdentity: sourceIdentity(location, fixture.mediaStore),
          dryRun: false,
          logger: createLogger("silent"),
        });
      } finally {
        await source.close();
        await database.close();
      }
      assert.equal(result.stopped, false);
      assert.deepEqual(countsOf(result.tally.counts), countsOf(fixture.expected));
      assert.equal(
        result.tally.problems.length + result.tally.problemsNotListed,
        IMPORT_KINDS.reduce((n, k) => n + fixture.expected[k].missing, 0),
      );
      await assertExactlyTheFixture(config, scale);

      const server = await startTestServer(engine, {
        database: config,
        media_store: { engine: "filesystem", path: fixture.mediaStore },
      });
      try {
        const admin = await server.user("admin", { admin: true });
        const get = (path: string) => download(server.baseUrl, path, { token: admin.token });
        // A sample spread over the whole range, of each kind.
        for (let i = 1; i < fixture.localCount; i += 4999) {
          const m = fixture.local(i);
          const path = `/_matrix/client/v1/media/download/test.local/${m.mediaId}`;
          const got = await get(path);
          if (m.length === null || !m.hasFile || m.quarantinedBy) {
            assert.equal(got.status, 404, path);
            continue;
          }
          assert.equal(got.status, 200, path);
          assert.deepEqual(got.bytes, bulkFileBytes(m), path);
          assert.equal(got.headers.get("content-type"), m.mediaType, path);
          const name = encodeURIComponent(m.uploadName);
          const inline = m.mediaType === "image/jpeg" ? "inline" : "attachment";
          assert.equal(
            got.headers.get("content-disposition"),
            `${inline}; filename*=utf-8''${name}`,
          );
          for (const t of m.thumbnails.filter((t) => t.hasFile)) {
            const thumb = await get(
              `/_matrix/client/v1/media/thumbnail/test.local/${m.mediaId}?width=${t.width}&height=${t.height}&method=${t.method}`,
            );
            assert.equal(thumb.status, 200, t.path);
            assert.deepEqual(thumb.bytes, bulkThumbnailBytes(t), t.path);
          }
        }
        for (const i of [0, 14 * 100, 14 * 1000]) {
          const m = fixture.local(i);
          for (const t of m.thumbnails.filter((t) => t.hasFile)) {
            const thumb = await get(
              `/_matrix/client/v1/media/thumbnail/test.local/${m.mediaId}?width=${t.width}&height=${t.height}&method=${t.method}`,
            );
            assert.equal(thumb.status, 200, t.path);
            assert.deepEqual(thumb.bytes, bulkThumbnailBytes(t), t.path);
            assert.equal(thumb.headers.get("content-type"), t.type);
          }
        }
        for (const j of [0, 2, 3, 1000, fixture.remoteCount - 1]) {
          const r = fixture.remote(j);
          const got = await get(`/_matrix/client/v1/media/download/${r.origin}/${r.mediaId}`);
          assert.equal(got.status, 200, r.mediaId);
          assert.deepEqual(got.bytes, bulkFileBytes(r));
          assert.equal(got.headers.get("content-type"), r.mediaType);
          for (const t of r.thumbnails) {
            const thumb = await get(
              `/_matrix/client/v1/media/thumbnail/${r.origin}/${r.mediaId}?width=${t.width}&height=${t.height}&method=${t.method}`,
            );
            assert.equal(thumb.status, 200, t.path);
            assert.deepEqual(thumb.bytes, bulkThumbnailBytes(t), t.path);
          }
        }
        // Quarantined (local by an admin, remote by `system`): 404, like Synapse.
        const quarantined = fixture.quarantined;
        assert.ok(quarantined.some((q) => q.origin === null) && quarantined.some((q) => q.origin));
        for (const q of [...quarantined.slice(0, 3), ...quarantined.slice(-3)]) {
          const got = await get(
            `/_matrix/client/v1/media/download/${q.origin ?? "test.local"}/${q.mediaId}`,
          );
          assert.equal(got.status, 404, q.mediaId);
        }
        // Protected stays protected.
        const protectedItem = fixture.local(13);
        assert.equal(protectedItem.protected, true);
        const info = await admin.http.get(
          `/_synapse/admin/v1/media/test.local/${protectedItem.mediaId}`,
        );
        assert.equal(info.status, 200);
        assert.equal(info.body.media_info.safe_from_quarantine, true);
        // The server's quarantine-feed backfill records each quarantined item once.
        await waitFor(async () => {
          const job = await withDatabase(config, (d) =>
            d.db
              .selectFrom("background_jobs")
              .select("status")
              .where("name", "=", "quarantine-feed-backfill")
              .executeTakeFirst(),
          );
          return job?.status === "done";
        });
        assert.deepEqual(await feedRecords(config), expectedFeed(fixture));
      } finally {
        await server.stop();
      }
    },
  );
});
