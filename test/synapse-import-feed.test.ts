/**
 * `mxcd import synapse` and the quarantine change feed, URL-preview media
 * and the preview cache (docs/import.md): an HMA-style consumer that polled
 * Synapse's `quarantine_changes` up to Synapse's highest stream id keeps its
 * checkpoint against mxcd and sees exactly the quarantines Synapse's stream
 * missed, then mxcd's own changes; URL-preview media and unexpired
 * preview-cache rows arrive too, unless `--skip-url-cache`. Fixtures at
 * schema vintages 92 (sha256, no change stream) and 94, with the mxcd
 * database and the Synapse source on SQLite and on PostgreSQL.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import type { DatabaseConfig } from "../src/config/config-schema.js";
import { createDatabase, type Engine } from "../src/db/database.js";
import { runMigrations } from "../src/db/migrate.js";
import { QUARANTINE_FEED_BACKFILL } from "../src/jobs/quarantine-feed-backfill-job.js";
import { QuarantineFeedRepository } from "../src/repositories/quarantine-feed-repository.js";
import { upsertCachedPreview } from "../src/repositories/url-preview-repository.js";
import { runCli } from "./support/cli.js";
import { forEachEngine, freshDatabaseConfig } from "./support/databases.js";
import { download } from "./support/media.js";
import {
  createSynapseFixture,
  type FixtureExtras,
  localRow,
  type SynapseFixture,
} from "./support/synapse-fixture.js";
import { importSynapse } from "./support/synapse-import.js";
import { startTestServer, type TestServer } from "./support/test-server.js";

const SERVER = "test.local";
/** Synapse's highest stream id in the vintage-94 fixture: the consumer's checkpoint. */
const SYNAPSE_MAX = 57;
const NOW = Date.now();
/** The start of this hour: mxcd's preview cache keeps one entry per URL and hour. */
const HOUR = NOW - (NOW % 3_600_000);

const PREVIEW_IMAGE = "2024-05-01_previewImage0001";
const PREVIEW_QUARANTINED = "2024-05-01_previewQuaran01";

/** Rows beside the default fixture's (which has BBBB quarantined by an admin, a system-quarantined remote and a `/create`d id). */
function extras(): FixtureExtras {
  const png = randomBytes(600);
  return {
    local: [
      // Quarantined automatically at upload: Synapse's stream never records that.
      localRow("SSSSsystem00000000000001", { quarantined_by: "system" }),
      // Quarantined, released (both recorded), then quarantined again unrecorded.
      localRow("QQQQrequarantined0000001", { quarantined_by: `@admin:${SERVER}` }),
      // Quarantined and released, both recorded: free now.
      localRow("UUUUreleased000000000001"),
      // Recorded as quarantined, then released behind the stream's back (in SQL).
      localRow("FFFFfreedUnrecorded00001"),
      // Another `/create`d id that never got bytes.
      localRow("PPPPpending0000000000002", { file: undefined, media_length: null, sha256: null }),
      localRow(PREVIEW_IMAGE, {
        url_cache: "http://127.0.0.1:9/page",
        media_type: "image/png",
        file: png,
        media_length: png.length,
        upload_name: null,
      }),
      // A URL-preview image quarantined by hash at download (unrecorded by Synapse).
      localRow(PREVIEW_QUARANTINED, {
        url_cache: "http://127.0.0.1:9/bad",
        quarantined_by: "system",
        upload_name: null,
      }),
    ],
    thumbnails: [32, 96].map((size) => ({
      media_origin: null,
      media_id: PREVIEW_IMAGE,
      width: size,
      height: size,
      type: "image/png",
      method: size === 32 ? "crop" : "scale",
      file: randomBytes(50 + size),
      legacyName: false,
      filesystem_id: null,
      urlCache: true,
    })),
    previews: [
      // An older fetch of the same URL in the same hour: the newer one wins.
      {
        url: "http://127.0.0.1:9/page",
        response_code: 200,
        etag: null,
        expires_ts: NOW + 3_600_000,
        og: JSON.stringify({ "og:title": "An older fetch" }),
        media_id: "2024-05-01_pageDownload0000",
        download_ts: HOUR + 1,
      },
      {
        url: "http://127.0.0.1:9/page#section",
        response_code: 200,
        etag: null,
        expires_ts: NOW + 3_600_000,
        og: JSON.stringify({
          "og:title": "A page",
          "og:image": `mxc://${SERVER}/${PREVIEW_IMAGE}`,
          "matrix:image:size": 600,
        }),
        media_id: "2024-05-01_pageDownload0001",
        download_ts: HOUR + 2,
      },
      // Expired: not imported (a request would fetch afresh).
      {
        url: "http://127.0.0.1:9/old",
        response_code: 200,
        etag: null,
        expires_ts: NOW - 1000,
        og: JSON.stringify({ "og:title": "Old" }),
        media_id: "2024-01-01_oldDownload00001",
        download_ts: NOW - 86_400_000,
      },
      // Not a JSON object: skipped.
      {
        url: "http://127.0.0.1:9/broken",
        response_code: 200,
        etag: null,
        expires_ts: NOW + 3_600_000,
        og: "not json",
        media_id: "2024-05-01_brokenDownload01",
        download_ts: NOW - 60_000,
      },
    ],
    changes: [
      { stream_id: 40, origin: null, media_id: "BBBBquarantined000000001", quarantined: true },
      { stream_id: 41, origin: null, media_id: "QQQQrequarantined0000001", quarantined: true },
      { stream_id: 42, origin: null, media_id: "QQQQrequarantined0000001", quarantined: false },
      { stream_id: 43, origin: null, media_id: "UUUUreleased000000000001", quarantined: true },
      { stream_id: 44, origin: null, media_id: "UUUUreleased000000000001", quarantined: false },
      { stream_id: 46, origin: null, media_id: "FFFFfreedUnrecorded00001", quarantined: true },
      // Another origin's media of the same id: says nothing about other.example's.
      {
        stream_id: 45,
        origin: "elsewhere.example",
        media_id: "remoteQuarantined",
        quarantined: true,
      },
      // Media deleted from Synapse since; nothing to import.
      { stream_id: SYNAPSE_MAX, origin: null, media_id: "XXXXdeleted", quarantined: true },
    ],
  };
}

/**
 * [origin, media_id, quarantined_by] of every item whose state Synapse's
 * stream does not end with (quarantined_by null: a release record).
 */
function expectedMissing(vintage: 92 | 94): (string | null)[][] {
  const missing: (string | null)[][] = [
    [SERVER, PREVIEW_QUARANTINED, "system"],
    [SERVER, "QQQQrequarantined0000001", `@admin:${SERVER}`],
    [SERVER, "SSSSsystem00000000000001", "system"],
    ["other.example", "remoteQuarantined", "system"],
  ];
  // Without a stream nothing was reported: the admin's quarantine of BBBB too.
  if (vintage === 92) missing.push([SERVER, "BBBBquarantined000000001", `@admin:${SERVER}`]);
  // The stream's last word is "quarantined" but the row is free: a release record.
  if (vintage === 94) missing.push([SERVER, "FFFFfreedUnrecorded00001", null]);
  return missing.sort();
}

/** Imports `fixture` in-process, keying preview-cache entries as this file's server does. */
function importInto(
  config: DatabaseConfig,
  fixture: SynapseFixture,
  options: { batchSize?: number; signal?: AbortSignal; onProgress?: () => void } & {
    skipUrlCache?: boolean;
  } = {},
) {
  return importSynapse(config, fixture, {
    previewSettings: { language: "en", serverName: SERVER },
    ...options,
  });
}

/** mxcd serving the imported store (previews on, every fetch refused: only the cache can answer). */
function serve(engine: Engine, database: DatabaseConfig, fixture: SynapseFixture) {
  return startTestServer(engine, {
    database,
    media_store: { engine: "filesystem", path: fixture.mediaStore },
    url_preview_enabled: true,
    url_preview_ip_range_blacklist: ["127.0.0.0/8", "::1/128"],
  });
}

/** Waits until the server's quarantine-feed backfill has finished (it runs in the background). */
async function backfillDone(server: TestServer): Promise<void> {
  for (;;) {
    const state = (await server.app.jobs.states()).find((s) => s.name === QUARANTINE_FEED_BACKFILL);
    if (state?.status === "done") return;
    await sleep(20);
  }
}

type Change = {
  origin: string;
  media_id: string;
  quarantined: boolean;
  quarantined_by: string | null;
};

/** Every change after `from`, one per page (so next_batch is each one's id); and the last next_batch. */
async function readFeed(
  admin: TestServer["http"],
  from: number,
): Promise<{ changes: (Change & { id: number })[]; next: number }> {
  const changes: (Change & { id: number })[] = [];
  for (;;) {
    const page = await admin.get(
      `/_synapse/admin/v1/media/quarantine_changes?from=${from}&limit=1`,
    );
    assert.equal(page.status, 200, JSON.stringify(page.body));
    const [change] = page.body.changes as Change[];
    if (!change) return { changes, next: page.body.next_batch };
    changes.push({ ...change, id: page.body.next_batch });
    from = page.body.next_batch;
  }
}

const triples = (changes: Change[]) =>
  changes.map((c) => [c.origin, c.media_id, c.quarantined_by]).sort();

forEachEngine("Synapse import: the quarantine feed continues", (engine: Engine) => {
  it("vintage 94: a consumer at Synapse's checkpoint sees exactly the missed quarantines, once, then mxcd's changes", async () => {
    const fixture = await createSynapseFixture(engine, 94, extras());
    const database = await freshDatabaseConfig(engine);
    // Killed after the second committed page (small pages), resumed, then re-run.
    const abort = new AbortController();
    let pages = 0;
    const first = await importInto(database, fixture, {
      batchSize: 2,
      signal: abort.signal,
      onProgress: () => {
        if (++pages === 2) abort.abort();
      },
    });
    assert.equal(first.stopped, true);
    const resumed = await importInto(database, fixture, { batchSize: 2 });
    assert.equal(resumed.stopped, false);
    const again = await importInto(database, fixture);
    assert.equal(again.tally.counts.local.imported, 0);

    const server = await serve(engine, database, fixture);
    try {
      const admin = await server.user("admin", { admin: true });
      // The server's own backfill job has run (or found nothing to do) before we look.
      await backfillDone(server);
      const feed = await readFeed(admin.http, SYNAPSE_MAX);
      assert.deepEqual(triples(feed.changes), expectedMissing(94));
      assert.ok(feed.changes.every((c) => c.quarantined === (c.quarantined_by !== null)));
      // Ids continue right above Synapse's: 58.. with no gap and nothing at or below 57.
      assert.deepEqual(
        feed.changes.map((c) => c.id),
        expectedMissing(94).map((_, i) => SYNAPSE_MAX + 1 + i),
      );
      assert.deepEqual((await readFeed(admin.http, 0)).changes.length, feed.changes.length);
      // Records carry the hash (the system-quarantined local row's sha256).
      const page = await admin.http.get(
        `/_synapse/admin/v1/media/quarantine_changes?from=${SYNAPSE_MAX}&limit=100`,
      );
      const system = page.body.changes.find(
        (c: Change) => c.media_id === "SSSSsystem00000000000001",
      );
      const row = fixture.local.find((m) => m.media_id === "SSSSsystem00000000000001")!;
      assert.equal(system.sha256, row.sha256);

      // A later change in mxcd comes next, and only it.
      const q = await admin.http.post(
        `/_synapse/admin/v1/media/quarantine/${SERVER}/UUUUreleased000000000001`,
        {},
      );
      assert.equal(q.status, 200);
      const later = await readFeed(admin.http, feed.next);
      assert.deepEqual(
        later.changes.map((c) => [c.media_id, c.quarantined, c.id]),
        [["UUUUreleased000000000001", true, feed.next + 1]],
      );
    } finally {
      await server.stop();
    }
  });

  it("vintage 92 (no stream): every quarantined item gets one record; re-runs add none", async () => {
    const { changes: _, ...rest } = extras();
    const fixture = await createSynapseFixture(engine, 92, rest);
    const database = await freshDatabaseConfig(engine);
    await importInto(database, fixture);
    await importInto(database, fixture, { batchSize: 3 });
    const server = await serve(engine, database, fixture);
    try {
      const admin = await server.user("admin", { admin: true });
      await backfillDone(server);
      const feed = await readFeed(admin.http, 0);
      assert.deepEqual(triples(feed.changes), expectedMissing(92));
      // mxcd's feed starts where Synapse's streams start: the first record is 2.
      assert.equal(feed.next, 1 + expectedMissing(92).length);
    } finally {
      await server.stop();
    }
  });

  it("never lowers mxcd's feed position; the import's records come after mxcd's own", async () => {
    // The source on the other engine (SQLite into PostgreSQL and back), when both run.
    const source = process.env.MXCD_TEST_POSTGRES_URL
      ? engine === "sqlite"
        ? "postgres"
        : "sqlite"
      : engine;
    const fixture = await createSynapseFixture(source, 94, extras());
    const database = await freshDatabaseConfig(engine);
    const db = createDatabase(database);
    try {
      await runMigrations(db);
      const feed = new QuarantineFeedRepository(db);
      assert.equal(await feed.raisePosition(1000), 1000);
      assert.equal(await feed.raisePosition(SYNAPSE_MAX), 1000);
    } finally {
      await db.close();
    }
    await importInto(database, fixture);
    const db2 = createDatabase(database);
    try {
      const feed = new QuarantineFeedRepository(db2);
      const records = await feed.page(0, await feed.position(), 100);
      assert.deepEqual(
        records.map((r) => r.streamId),
        expectedMissing(94).map((_, i) => 1001 + i),
      );
    } finally {
      await db2.close();
    }
  });
});

forEachEngine("Synapse import: URL-preview media and the preview cache", (engine: Engine) => {
  it("imports url-cache media, its thumbnails and unexpired preview-cache rows", async () => {
    const fixture = await createSynapseFixture(engine, 94, extras());
    const database = await freshDatabaseConfig(engine);
    const result = await importInto(database, fixture);
    const c = result.tally.counts;
    // [imported, present, skipped, missing]
    const row = (k: keyof typeof c) => [c[k].imported, c[k].present, c[k].skipped, c[k].missing];
    // The default fixture's URL-preview row has no file.
    assert.deepEqual(row("url_cache"), [2, 0, 0, 1]);
    assert.deepEqual(row("url_cache_thumbnail"), [2, 0, 0, 0]);
    // Two fetches of one URL in one hour (one entry, the newer); the broken row is
    // skipped; the expired one is not read at all.
    assert.deepEqual(row("preview_cache"), [2, 0, 1, 0]);
    // `/create`d ids without bytes (the default fixture's and ours) are skipped.
    assert.equal(c.local.skipped, 2);

    // Synapse's URL is the key without its fragment, in mxcd's language; the image's id kept.
    const db = createDatabase(database);
    try {
      const rows = await db.db.selectFrom("url_preview_cache").selectAll().execute();
      assert.deepEqual(
        rows.map((r) => [
          r.url,
          r.language,
          Number(r.status),
          r.media_id,
          Number(r.expires_ts),
          Number(r.download_ts),
        ]),
        [["http://127.0.0.1:9/page", "en", 200, PREVIEW_IMAGE, NOW + 3_600_000, HOUR + 2]],
      );
    } finally {
      await db.close();
    }
    const server = await serve(engine, database, fixture);
    try {
      const admin = await server.user("admin", { admin: true });
      const get = (path: string) => download(server.baseUrl, path, { token: admin.token });
      const image = fixture.local.find((m) => m.media_id === PREVIEW_IMAGE)!;
      const got = await get(`/_matrix/client/v1/media/download/${SERVER}/${PREVIEW_IMAGE}`);
      assert.equal(got.status, 200);
      assert.deepEqual(got.bytes, image.file);
      for (const t of fixture.thumbnails.filter((t) => t.urlCache)) {
        const thumb = await get(
          `/_matrix/client/v1/media/thumbnail/${SERVER}/${PREVIEW_IMAGE}?width=${t.width}&height=${t.height}&method=${t.method}`,
        );
        assert.equal(thumb.status, 200);
        assert.deepEqual(thumb.bytes, t.file);
      }
      const info = await admin.http.get(`/_synapse/admin/v1/media/${SERVER}/${PREVIEW_IMAGE}`);
      assert.equal(info.body.media_info.url_cache, "http://127.0.0.1:9/page");
      // Quarantined URL-preview media stays quarantined.
      assert.equal(
        (await get(`/_matrix/client/v1/media/download/${SERVER}/${PREVIEW_QUARANTINED}`)).status,
        404,
      );

      // Every fetch is refused, so only the imported cache entry can answer.
      const preview = (url: string) =>
        admin.http.get(`/_matrix/client/v1/media/preview_url?url=${encodeURIComponent(url)}`);
      const cached = await preview("http://127.0.0.1:9/page");
      assert.equal(cached.status, 200);
      assert.equal(cached.body["og:title"], "A page");
      assert.equal(cached.body["og:image"], `mxc://${SERVER}/${PREVIEW_IMAGE}`);
      assert.notEqual((await preview("http://127.0.0.1:9/old")).status, 200);
    } finally {
      await server.stop();
    }
  });

  it("keeps mxcd's own newer fetch of a URL over Synapse's older one", async () => {
    const fixture = await createSynapseFixture(engine, 94, extras());
    const database = await freshDatabaseConfig(engine);
    const db = createDatabase(database);
    try {
      await runMigrations(db);
      // mxcd fetched the page itself, later in the same hour than Synapse's fetches.
      await upsertCachedPreview(
        db.db,
        {
          url: "http://127.0.0.1:9/page",
          language: "en",
          bucketTs: HOUR,
          downloadTs: HOUR + 10,
          expiresTs: NOW + 3_600_000,
          og: JSON.stringify({ "og:title": "mxcd's own fetch" }),
          status: 200,
          errcode: null,
          error: null,
          mediaId: null,
        },
        "always",
      );
    } finally {
      await db.close();
    }
    await importInto(database, fixture);
    const after = createDatabase(database);
    try {
      const rows = await after.db.selectFrom("url_preview_cache").select(["url", "og"]).execute();
      assert.deepEqual(rows, [
        { url: "http://127.0.0.1:9/page", og: JSON.stringify({ "og:title": "mxcd's own fetch" }) },
      ]);
    } finally {
      await after.close();
    }
  });

  it("--skip-url-cache skips both and counts them", async () => {
    const fixture = await createSynapseFixture(engine, 94, extras());
    const database = await freshDatabaseConfig(engine);
    const result = await importInto(database, fixture, { skipUrlCache: true });
    const c = result.tally.counts;
    assert.deepEqual(c.url_cache, { imported: 0, present: 0, skipped: 3, missing: 0 });
    assert.deepEqual(c.url_cache_thumbnail, { imported: 0, present: 0, skipped: 2, missing: 0 });
    assert.deepEqual(c.preview_cache, { imported: 0, present: 0, skipped: 3, missing: 0 });
    const db = createDatabase(database);
    try {
      const previews = await db.db.selectFrom("url_preview_cache").select("url").execute();
      assert.equal(previews.length, 0);
      const media = await db.db
        .selectFrom("local_media_repository")
        .select("media_id")
        .where("url_cache", "is not", null)
        .execute();
      assert.equal(media.length, 0);
      // The skipped quarantined URL-preview image gets no feed record either.
      const feed = new QuarantineFeedRepository(db);
      const ids = (await feed.page(0, await feed.position(), 100)).map((r) => r.mediaId);
      assert.ok(!ids.includes(PREVIEW_QUARANTINED));
    } finally {
      await db.close();
    }
  });
});

describe("mxcd import synapse --skip-url-cache (CLI)", () => {
  it("takes the flag and names the stream position it continues", async () => {
    const fixture = await createSynapseFixture("sqlite", 94, extras());
    const dir = mkdtempSync(join(tmpdir(), "mxcd-import-feed-cli-"));
    writeFileSync(
      join(dir, "mxcd.yaml"),
      JSON.stringify({
        server_name: SERVER,
        database: { engine: "sqlite", path: join(dir, "mxcd.sqlite") },
        media_store: { engine: "filesystem", path: fixture.mediaStore },
        log_level: "silent",
      }),
    );
    const sqlite = (fixture.location as { sqlite: string }).sqlite;
    const args = ["import", "synapse", "--sqlite", sqlite, "--media-store", fixture.mediaStore];
    const run = await runCli(args, { cwd: dir });
    assert.match(run.stderr, new RegExp(`up to stream id ${SYNAPSE_MAX}`));
    assert.match(run.stdout, /^url_cache\s+2\s+0\s+0\s+1$/m);
    const skipped = await runCli([...args, "--skip-url-cache"], { cwd: dir });
    // A re-run: everything imported before is present; URL-preview media is skipped now.
    assert.match(skipped.stdout, /^url_cache\s+0\s+0\s+3\s+0$/m);
    assert.match(skipped.stdout, /^preview_cache\s+0\s+0\s+3\s+0$/m);
  });
});
