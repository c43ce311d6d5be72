/**
 * `mxcd import synapse` (docs/import.md): a Synapse database and media store
 * made from our own DDL (test/support/synapse-fixture.ts, schema vintages
 * 85 and 94, on SQLite and PostgreSQL) imported in reference mode, then
 * served by mxcd from Synapse's own folder.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import type { Engine } from "../src/db/database.js";
import type { ImportCounts, ImportKind, ImportTally } from "../src/importer/import-report.js";
import { openSynapseSource, type SynapseSource } from "../src/importer/synapse-source.js";
import { runCli } from "./support/cli.js";
import { forEachEngine, freshDatabaseConfig } from "./support/databases.js";
import { download, uploadBytes } from "./support/media.js";
import { rowCounts } from "./support/synapse-bulk-checks.js";
import { createSynapseFixture, localRow, thumbnailPath } from "./support/synapse-fixture.js";
import {
  assertLocalServed,
  assertRemoteServed,
  assertThumbnailsServed,
  importSynapse,
  SERVED_LOCAL,
} from "./support/synapse-import.js";
import { startTestServer } from "./support/test-server.js";

function counts(
  tally: ImportTally,
): Record<Exclude<ImportKind, "url_cache" | "url_cache_thumbnail" | "preview_cache">, number[]> {
  const row = (c: ImportCounts) => [c.imported, c.present, c.skipped, c.missing];
  return {
    local: row(tally.counts.local),
    local_thumbnail: row(tally.counts.local_thumbnail),
    remote: row(tally.counts.remote),
    remote_thumbnail: row(tally.counts.remote_thumbnail),
  };
}

/** The default fixture imported once: [imported, present, skipped, missing] per kind. */
const FIRST_PASS = {
  local: [4, 0, 1, 3],
  local_thumbnail: [2, 0, 0, 0],
  remote: [3, 0, 0, 0],
  remote_thumbnail: [2, 0, 0, 0],
};

forEachEngine("Synapse import", (engine: Engine) => {
  for (const vintage of [85, 94] as const) {
    it(`vintage ${vintage}: imports, leaves Synapse unchanged, and mxcd serves it all`, async () => {
      const fixture = await createSynapseFixture(engine, vintage);
      const source = await openSynapseSource(fixture.location);
      const schema = await source.schema();
      await source.close();
      assert.deepEqual(
        [schema.version, schema.localAuthenticated, schema.localSha256, schema.quarantineChanges],
        vintage === 94 ? [94, true, true, true] : [85, false, false, false],
      );
      const before = await fixture.fingerprint();
      const database = await freshDatabaseConfig(engine);
      const result = await importSynapse(database, fixture);
      assert.equal(result.stopped, false);
      assert.deepEqual(counts(result.tally), FIRST_PASS);
      assert.deepEqual(result.tally.problems.map((p) => p.item).sort(), [
        // URL-preview media whose file under url_cache/ is gone.
        "2024-01-01_urlcache00001",
        "EEEEmissing0000000000001",
        "FFFFtruncated00000000001",
        "HHHHdirectory00000000001",
      ]);
      assert.match(
        result.tally.problems.find((p) => p.item.includes("FFFF"))!.problem,
        /truncated/,
      );
      assert.equal(
        result.tally.problems.find((p) => p.item.includes("HHHH"))!.problem,
        "not a file",
      );
      assert.equal(await fixture.fingerprint(), before, "the Synapse database was changed");

      const server = await startTestServer(engine, {
        database,
        media_store: { engine: "filesystem", path: fixture.mediaStore },
      });
      try {
        const admin = await server.user("admin", { admin: true });
        const get = (path: string) => download(server.baseUrl, path, { token: admin.token });
        for (const [id, headers] of Object.entries(SERVED_LOCAL)) {
          const row = fixture.local.find((m) => m.media_id === id)!;
          await assertLocalServed(get, fixture, id, headers);
          const info = await admin.http.get(`/_synapse/admin/v1/media/test.local/${id}`);
          assert.equal(info.status, 200);
          // mxcd's stored hashes come from the media-hash backfill (running now) or not yet.
          const { md5, pdq, pdq_quality, ...synapseFields } = info.body.media_info;
          assert.ok(md5 === null || md5 === createHash("md5").update(row.file!).digest("hex"));
          assert.ok(pdq === null || /^[0-9a-f]{64}$/.test(pdq));
          assert.ok(pdq_quality === null || Number.isInteger(pdq_quality));
          assert.deepEqual(synapseFields, {
            media_origin: null,
            user_id: row.user_id,
            media_id: id,
            media_type: row.media_type,
            media_length: row.media_length,
            upload_name: row.upload_name,
            created_ts: row.created_ts,
            filesystem_id: null,
            url_cache: null,
            last_access_ts: row.last_access_ts,
            quarantined_by: null,
            authenticated: vintage === 94 ? row.authenticated : false,
            safe_from_quarantine: row.safe_from_quarantine,
            sha256: vintage === 94 ? row.sha256 : null,
          });
        }
        for (const r of fixture.remote) {
          const info = await admin.http.get(
            `/_synapse/admin/v1/media/${r.media_origin}/${r.media_id}`,
          );
          assert.equal(info.status, 200);
          const { file: _file, media_origin, ...rest } = r;
          // mxcd's stored hashes: from the media-hash backfill, or not yet.
          const { md5, pdq: _pdq, pdq_quality: _quality, ...synapseFields } = info.body.media_info;
          assert.ok(md5 === null || md5 === createHash("md5").update(r.file!).digest("hex"));
          assert.deepEqual(synapseFields, {
            ...rest,
            media_origin,
            user_id: null,
            url_cache: null,
            safe_from_quarantine: null,
            authenticated: vintage === 94 ? r.authenticated : false,
            // Quarantined media gets its hash computed when the schema has none.
            sha256: vintage === 94 || r.quarantined_by !== null ? r.sha256 : null,
          });
        }
        await assertRemoteServed(get, fixture);
        {
          // Quarantined by hash (at vintage 85 the hash is computed by the import): a new upload of the quarantined bytes is quarantined too.
          const bytes = fixture.local.find((m) => m.media_id.startsWith("BBBB"))!.file!;
          const id = await uploadBytes(admin.http, bytes, { contentType: "text/plain" });
          const again = await get(`/_matrix/client/v1/media/download/test.local/${id}`);
          assert.equal(again.status, 404);
        }

        // Thumbnails: a local one, a remote one and one stored under the legacy name.
        await assertThumbnailsServed(get, fixture);

        // Quarantined (by an admin, locally; by `system`, remotely) stays quarantined.
        for (const path of [
          "/_matrix/client/v1/media/download/test.local/BBBBquarantined000000001",
          "/_matrix/client/v1/media/download/other.example/remoteQuarantined",
        ]) {
          assert.equal((await get(path)).status, 404, path);
        }
        // Not imported: missing, truncated, pending and URL-preview media.
        for (const id of [
          "EEEEmissing0000000000001",
          "FFFFtruncated00000000001",
          "GGGGpending0000000000001",
        ]) {
          const info = await admin.http.get(`/_synapse/admin/v1/media/test.local/${id}`);
          assert.equal(info.status, 404, id);
        }
        // Protected stays protected: quarantining the user's media spares it.
        const q = await admin.http.post(
          `/_synapse/admin/v1/user/@alice:test.local/media/quarantine`,
          {},
        );
        assert.equal(q.status, 200);
        assert.equal(
          (await get("/_matrix/client/v1/media/download/test.local/CCCCprotected00000000001"))
            .status,
          200,
        );
        assert.equal(
          (await get("/_matrix/client/v1/media/download/test.local/AAAAimage000000000000001"))
            .status,
          404,
        );
      } finally {
        await server.stop();
      }
    });
  }

  it("a stop and a crash mid-import resume with no duplicate; re-runs import only new rows", async () => {
    const fixture = await createSynapseFixture(engine, 94);
    const database = await freshDatabaseConfig(engine);
    // Stopped after the first committed page.
    const abort = new AbortController();
    const first = await importSynapse(database, fixture, {
      batchSize: 2,
      signal: abort.signal,
      onProgress: () => abort.abort(),
    });
    assert.equal(first.stopped, true);
    // The first page: the URL-preview id (digits sort first; its file is missing) and one image.
    assert.deepEqual(first.tally.counts.local, { imported: 1, present: 0, skipped: 0, missing: 0 });
    assert.equal(first.tally.counts.url_cache.missing, 1);
    assert.deepEqual(await rowCounts(database), [1, 2, 0, 0]);
    // An unfinished import is never continued from another source.
    const other = await createSynapseFixture(engine, 85);
    await assert.rejects(importSynapse(database, other), /an unfinished import from .* is stored/);
    // A crash in the remote phase: the batch rolls back and the error surfaces.
    let remotePages = 0;
    await assert.rejects(
      importSynapse(database, fixture, {
        batchSize: 2,
        wrap: (s) => ({
          ...bind(s),
          remotePage: async (after, limit) => {
            const rows = await s.remotePage(after, limit);
            if (++remotePages === 1) throw new Error("injected crash");
            return rows;
          },
        }),
      }),
      /injected crash/,
    );
    const resumed = await importSynapse(database, fixture, { batchSize: 2 });
    assert.equal(resumed.stopped, false);
    assert.deepEqual(counts(resumed.tally), FIRST_PASS);
    assert.deepEqual(await rowCounts(database), [4, 2, 3, 2]);

    // Finished: a re-run is a new pass that finds everything present.
    const again = await importSynapse(database, fixture, { batchSize: 3 });
    assert.deepEqual(counts(again.tally), {
      local: [0, 4, 1, 3],
      local_thumbnail: [0, 2, 0, 0],
      remote: [0, 3, 0, 0],
      remote_thumbnail: [0, 2, 0, 0],
    });
    // Synapse got more media: only that is imported.
    await fixture.addLocal([
      localRow("0000earliest000000000001"),
      localRow("zzzzlatest00000000000001"),
    ]);
    const more = await importSynapse(database, fixture, { batchSize: 3 });
    assert.deepEqual(more.tally.counts.local, { imported: 2, present: 4, skipped: 1, missing: 3 });
    assert.deepEqual(await rowCounts(database), [6, 2, 3, 2]);
  });
});

/** A plain object whose methods are the source's, bound (so they survive spreading). */
function bind(s: SynapseSource): SynapseSource {
  return {
    schema: () => s.schema(),
    localPage: (a, l) => s.localPage(a, l),
    remotePage: (a, l) => s.remotePage(a, l),
    localThumbnails: (ids) => s.localThumbnails(ids),
    remoteThumbnails: (o, ids) => s.remoteThumbnails(o, ids),
    previewPage: (a, n, l) => s.previewPage(a, n, l),
    countRows: () => s.countRows(),
    close: () => s.close(),
  };
}

describe("mxcd import synapse (CLI)", () => {
  it("dry run changes nothing; the import prints the report and exits 1 on missing files", async () => {
    const fixture = await createSynapseFixture("sqlite", 94);
    const dir = mkdtempSync(join(tmpdir(), "mxcd-import-cli-"));
    const mxcdDb = join(dir, "mxcd.sqlite");
    const config = (path: string) =>
      JSON.stringify({
        server_name: "test.local",
        database: { engine: "sqlite", path: mxcdDb },
        media_store: { engine: "filesystem", path },
        log_level: "silent",
      });
    writeFileSync(join(dir, "mxcd.yaml"), config(fixture.mediaStore));
    writeFileSync(join(dir, "elsewhere.yaml"), config(join(dir, "other")));
    const args = ["import", "synapse", "--sqlite", (fixture.location as { sqlite: string }).sqlite];
    const store = ["--media-store", fixture.mediaStore];

    const wrongStore = await runCli([...args, ...store, "--config", "elsewhere.yaml"], {
      cwd: dir,
    });
    assert.equal(wrongStore.code, 1);
    assert.match(wrongStore.stderr, /media_store must be/);

    const dry = await runCli([...args, ...store, "--dry-run"], { cwd: dir });
    assert.equal(dry.code, 1, dry.stderr);
    assert.match(dry.stdout, /would import/);
    assert.match(dry.stdout, /^local\s+4\s+0\s+1\s+3$/m);
    assert.deepEqual(await rowCounts({ engine: "sqlite", path: mxcdDb }), [0, 0, 0, 0]);
    // The legacy-named thumbnail is copied to its current name only by the real run.
    const legacy = fixture.thumbnails.find((t) => t.legacyName)!;
    const current = join(fixture.mediaStore, thumbnailPath({ ...legacy, legacyName: false }));
    assert.equal(existsSync(current), false);

    const run = await runCli([...args, ...store, "--reference"], { cwd: dir });
    assert.equal(run.code, 1, run.stderr);
    assert.match(run.stdout, /^local\s+4\s+0\s+1\s+3$/m);
    assert.match(run.stdout, /^remote_thumbnail\s+2\s+0\s+0\s+0$/m);
    assert.match(run.stdout, /missing local EEEEmissing0000000000001: missing/);
    assert.match(
      run.stdout,
      /missing local FFFFtruncated00000000001: truncated \(50 of 100 bytes\)/,
    );
    assert.match(run.stderr, /Synapse schema version 94/);
    assert.deepEqual(readFileSync(current), legacy.file);
    assert.deepEqual(readFileSync(join(fixture.mediaStore, thumbnailPath(legacy))), legacy.file);
    // `mxcd jobs` shows the import.
    const jobs = await runCli(["jobs"], { cwd: dir });
    assert.match(jobs.stdout, /synapse-import\s+done/);
  });
});
