/**
 * Media retention interrupted and from the command line (docs/media.md
 * "Retention"), on SQLite and PostgreSQL, with the run's media store:
 * - a batch that fails after deleting the files of the items it was
 *   deleting (a crash mid-batch) rolls back their rows but keeps their
 *   marks; the leftovers are listed by `mxcd media retention --dry-run`, and
 *   the next run deletes exactly those items — even one read meanwhile — so
 *   no row is left pointing at a deleted file and no file without its row;
 * - `mxcd media retention --dry-run` lists what would go and changes
 *   nothing; `mxcd media retention` runs one pass and prints its counts.
 */
import assert from "node:assert/strict";
import { Readable } from "node:stream";
import { after, before, it } from "node:test";
import type { Db } from "../src/db/database.js";
import {
  MediaRetentionRepository,
  type RetentionCandidate,
  type RetentionCursor,
  type RetentionRule,
} from "../src/repositories/media-retention-repository.js";
import { remoteContentKey, remoteThumbnailKey } from "../src/storage/media-paths.js";
import { runCli } from "./support/cli.js";
import { forEachEngine } from "./support/databases.js";
import { uploadBytes } from "./support/media.js";
import {
  DAY,
  retentionCliConfig,
  retentionJob,
  runPass,
  storeKeys,
  storeMismatches,
} from "./support/retention.js";
import { startTestServer, type TestServer, type TestUser } from "./support/test-server.js";

/** The job's queries, except that the first page read after deleting marked items fails. */
class CrashingRepository extends MediaRetentionRepository {
  deleting = false;
  crashed = false;

  override nowExempt(db: Db, items: readonly RetentionCandidate[]) {
    this.deleting = true;
    return super.nowExempt(db, items);
  }

  override candidates(
    db: Db,
    rule: RetentionRule,
    cutoff: number,
    after: RetentionCursor | null,
    limit: number,
  ) {
    if (this.deleting && !this.crashed) {
      this.crashed = true;
      throw new Error("injected crash after the files of a batch were deleted");
    }
    return super.candidates(db, rule, cutoff, after, limit);
  }
}

/** Inserts a cached remote item with its original and one thumbnail in the store. */
async function insertRemote(server: TestServer, mediaId: string, lastAccess: number) {
  const filesystemId = `fs${mediaId}`;
  await server.app.database.db
    .insertInto("remote_media_cache")
    .values({
      media_origin: "remote.example",
      media_id: mediaId,
      media_type: "text/plain",
      media_length: 5,
      created_ts: lastAccess,
      upload_name: null,
      filesystem_id: filesystemId,
      last_access_ts: lastAccess,
      quarantined_by: null,
      authenticated: false,
    })
    .execute();
  const { store } = server.app;
  await store.write(
    remoteContentKey("remote.example", filesystemId),
    Readable.from([Buffer.from("bytes")]),
  );
  await store.write(
    remoteThumbnailKey("remote.example", filesystemId, 32, 32, "image/png", "crop"),
    Readable.from([Buffer.from("thumb")]),
  );
}

forEachEngine("media retention: crash and CLI", (engine) => {
  let server: TestServer;
  let alice: TestUser;
  let configFile: string;
  let clock = Date.now();

  before(async () => {
    server = await startTestServer(
      engine,
      {
        media_retention: {
          local_media_lifetime: "30d",
          remote_media_lifetime: "7d",
          check_interval: "1d",
        },
      },
      { appOptions: { now: () => clock } },
    );
    alice = await server.user("alice");
    configFile = retentionCliConfig(server, "mxcd-retention-cli-").file;
  });
  after(() => server?.stop());

  const localRows = async (ids: readonly string[]) =>
    (
      await server.app.database.db
        .selectFrom("local_media_repository")
        .select("media_id")
        .where("media_id", "in", ids)
        .execute()
    )
      .map((r) => r.media_id)
      .sort();

  it("resumes a pass that failed mid-batch: the marked items go, even one read meanwhile", async () => {
    const ids: string[] = [];
    for (let i = 0; i < 5; i += 1) ids.push(await uploadBytes(alice.http, `local ${i}`));
    await insertRemote(server, "crashremote", clock);
    clock += 40 * DAY;

    const crashing = new CrashingRepository(server.app.config.server_name);
    const first = retentionJob(server, () => clock, crashing);
    await assert.rejects(runPass(server, first.job), /injected crash/);
    assert.ok(crashing.crashed);
    // The batch rolled back: rows are back, their files are not — the
    // leftovers, listed by the stored marks and by the dry run.
    assert.deepEqual(await localRows(ids), [...ids].sort());
    const mismatches = await storeMismatches(server);
    assert.ok(mismatches.length > 0, "files of the interrupted batch were deleted");
    const state = await server.app.jobs.states();
    const progress = state.find((s) => s.name === "media-retention")?.progress as {
      marked: RetentionCandidate[];
    };
    const marked = progress.marked.map((m) => m.mediaId);
    assert.ok(marked.length > 0);
    const dry = await runCli(["media", "retention", "--dry-run", "--config", configFile]);
    assert.equal(dry.code, 0, dry.stderr);
    for (const id of marked) {
      assert.match(dry.stdout, new RegExp(`/${id}\\t.*marked by an unfinished batch`));
    }
    // Reads of the marked items after the crash do not save them.
    await server.app.database.db
      .updateTable("local_media_repository")
      .set({ last_access_ts: clock })
      .where("media_id", "in", marked)
      .execute();

    await runPass(server, retentionJob(server, () => clock).job);
    assert.deepEqual(await localRows(ids), []);
    const remoteLeft = await server.app.database.db
      .selectFrom("remote_media_cache")
      .select("media_id")
      .where("media_id", "=", "crashremote")
      .execute();
    assert.deepEqual(remoteLeft, []);
    assert.deepEqual(await storeMismatches(server), []);
    assert.deepEqual(
      (await storeKeys(server)).filter((k) => k.includes("fscrashremote")),
      [],
      "remote original and thumbnail gone",
    );
  });

  it("mxcd media retention --dry-run lists what would go; without it, one pass runs", async () => {
    // The CLI runs on the real clock: these rows are dated in its past.
    const now = Date.now();
    const old = await uploadBytes(alice.http, "old and unread");
    const stale = await uploadBytes(alice.http, "read long ago");
    const kept = await uploadBytes(alice.http, "old but protected");
    const db = server.app.database.db;
    await db
      .updateTable("local_media_repository")
      .set({ created_ts: now - 40 * DAY, last_access_ts: null })
      .where("media_id", "in", [old, kept])
      .execute();
    await db
      .updateTable("local_media_repository")
      .set({ created_ts: now - 90 * DAY, last_access_ts: now - 35 * DAY })
      .where("media_id", "=", stale)
      .execute();
    await db
      .updateTable("local_media_repository")
      .set({ safe_from_quarantine: true })
      .where("media_id", "=", kept)
      .execute();

    const dry = await runCli(["media", "retention", "--dry-run", "--config", configFile]);
    assert.equal(dry.code, 0, dry.stderr);
    assert.match(
      dry.stdout,
      new RegExp(
        `^mxc://test\\.local/${old}\\t14\\tlocal_never_accessed\\tcreated 40d 0h ago$`,
        "m",
      ),
    );
    assert.match(
      dry.stdout,
      new RegExp(
        `^mxc://test\\.local/${stale}\\t13\\tlocal_last_access\\taccessed 35d 0h ago$`,
        "m",
      ),
    );
    assert.doesNotMatch(dry.stdout, new RegExp(kept));
    assert.match(dry.stdout, /^would delete 2 local media \(27 bytes\) and 0 remote media/m);
    assert.deepEqual(await localRows([old, stale, kept]), [old, stale, kept].sort());

    const run = await runCli(["media", "retention", "--config", configFile]);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /deleted 2 local media \(27 bytes\) and 0 remote media/);
    assert.deepEqual(await localRows([old, stale, kept]), [kept]);
    assert.deepEqual(await storeMismatches(server), []);
    // `mxcd jobs` shows the job and what it has deleted so far.
    const jobs = await runCli(["jobs", "--config", configFile]);
    assert.equal(jobs.code, 0, jobs.stderr);
    assert.match(jobs.stdout, /^media-retention +running .* \d+\/\?/m);
  });
});
