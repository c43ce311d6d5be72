/**
 * The `media-hash-backfill` job (docs/trust-and-safety.md "Stored hashes"):
 * media without MD5/PDQ (stored before migration 0010, imported, or missed
 * by the hashing queue) gets both, in keyset-paged batches that resume
 * where a stopped or failed run left off; `mxcd jobs` lists it.
 */
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { Readable } from "node:stream";
import { after, before, describe, it } from "node:test";
import sharp from "sharp";
import { createDatabase } from "../src/db/database.js";
import { JobRunner } from "../src/jobs/job-runner.js";
import { MEDIA_HASH_BACKFILL } from "../src/jobs/media-hash-backfill-job.js";
import { createLogger } from "../src/logging/logger.js";
import { createMediaHashing } from "../src/media/create-media-hashing.js";
import type { BlobStore } from "../src/storage/blob-store.js";
import { localContentKey, remoteContentKey } from "../src/storage/media-paths.js";
import { runCli } from "./support/cli.js";
import { forEachEngine } from "./support/databases.js";
import { FakePdqHasher } from "./support/fake-pdq-hasher.js";
import { uploadBytes } from "./support/media.js";
import { startTestServer, type TestServer } from "./support/test-server.js";
import { waitFor } from "./support/wait-for.js";

const logger = createLogger("silent");
const md5 = (bytes: Buffer) => createHash("md5").update(bytes).digest("hex");

async function png(seed: number): Promise<Buffer> {
  return sharp({
    create: { width: 32, height: 32, channels: 3, background: { r: seed, g: 255 - seed, b: 7 } },
  })
    .png()
    .toBuffer();
}

/** A store whose reads of `failKey` fail `failures` times (an S3 outage, say). */
function flakyStore(store: BlobStore, failKey: string, failures: number): BlobStore {
  let left = failures;
  return new Proxy(store, {
    get(target, prop, receiver) {
      if (prop === "read") {
        return (key: string, range?: never) => {
          if (key === failKey && left > 0) {
            left -= 1;
            return Promise.reject(new Error("store unavailable"));
          }
          return target.read(key, range);
        };
      }
      const value = Reflect.get(target, prop, receiver);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

forEachEngine("media-hash-backfill", (engine) => {
  let server: TestServer;
  const admission = new FakePdqHasher();
  /** Local id → bytes, remote `origin/id` → bytes. */
  const local = new Map<string, Buffer>();
  const remote = new Map<string, Buffer>();
  let missingId: string;
  let pendingId: string;

  const hashColumns = ["md5", "pdq", "pdq_quality", "pdq_status", "pdq_reason"] as const;
  const localRows = () =>
    server.app.database.db
      .selectFrom("local_media_repository")
      .select(["media_id", "media_type", ...hashColumns])
      .orderBy("media_id")
      .execute();
  const remoteRows = () =>
    server.app.database.db
      .selectFrom("remote_media_cache")
      .select(["media_origin", "media_id", "media_type", ...hashColumns])
      .orderBy("media_origin")
      .orderBy("media_id")
      .execute();

  before(async () => {
    server = await startTestServer(
      engine,
      { thumbnail_sizes: [] },
      {
        appOptions: { pdqHasher: admission.hash },
      },
    );
    const alice = await server.user("alice");
    for (let i = 0; i < 5; i++) {
      const bytes = await png(i * 40);
      local.set(await uploadBytes(alice.http, bytes, { contentType: "image/png" }), bytes);
    }
    for (let i = 0; i < 2; i++) {
      const bytes = randomBytes(70_000 + i);
      local.set(await uploadBytes(alice.http, bytes, { contentType: "video/mp4" }), bytes);
    }
    await waitFor(
      async () => (await localRows()).every((r) => r.pdq_status !== null),
      "admission hashing to finish",
    );
    // Cached remote media as an import would leave it: bytes, a row, no hashes.
    const db = server.app.database.db;
    for (const [origin, id, type] of [
      ["b.test", "img1", "image/jpeg"],
      ["b.test", "img2", "image/png"],
      ["c.test", "doc", "text/plain"],
    ] as const) {
      const bytes = type === "text/plain" ? randomBytes(999) : await png(id.length * 9);
      const fsId = `fs${id}`;
      await server.app.store.write(remoteContentKey(origin, fsId), Readable.from([bytes]));
      await db
        .insertInto("remote_media_cache")
        .values({
          media_origin: origin,
          media_id: id,
          media_type: type,
          media_length: bytes.length,
          created_ts: 1,
          filesystem_id: fsId,
          last_access_ts: 1,
        })
        .execute();
      remote.set(`${origin}/${id}`, bytes);
    }
    // A row whose bytes are gone, and a pending async upload (no bytes yet).
    missingId = "missingBytes";
    await db
      .insertInto("local_media_repository")
      .values({ media_id: missingId, media_type: "image/png", media_length: 10, created_ts: 1 })
      .execute();
    pendingId = "pendingUpload";
    await db
      .insertInto("local_media_repository")
      .values({ media_id: pendingId, created_ts: 1 })
      .execute();
    // Media stored before the hashes existed: every hash column null, and old.
    await db
      .updateTable("local_media_repository")
      .set({ md5: null, pdq: null, pdq_quality: null, pdq_status: null, pdq_reason: null })
      .set({ created_ts: 1 })
      .execute();
  });
  after(async () => {
    await server?.stop();
  });

  it("hashes every local and remote item; resumes after a stop and after a failed batch", async () => {
    const hasher = new FakePdqHasher();
    // The third local image in key order fails to read once: its batch fails.
    const sortedIds = [...local.keys()].sort();
    const failKey = localContentKey(sortedIds[2]!);
    const { backfill } = createMediaHashing(server.app.config, {
      database: server.app.database,
      store: flakyStore(server.app.store, failKey, 1),
      slots: { withSlot: (fn) => fn() },
      logger,
      hasher: hasher.hash,
    });
    const committed: number[] = [];
    const stop = new AbortController();
    const runner = (observe = false) =>
      new JobRunner(
        server.app.database,
        [backfill],
        logger,
        { batchSize: 2, pauseMs: 0 },
        {
          committed: (state) => {
            if (!observe) return;
            committed.push(state.processed);
            // Stop after the first committed batch, as a SIGINT would.
            stop.abort();
          },
        },
      );

    await runner(true).run({ signal: stop.signal });
    const afterStop = await localRows();
    assert.equal(committed.length, 1);
    const hashedAfterStop = afterStop.filter((r) => r.pdq_status !== null).length;
    assert.equal(hashedAfterStop, 2, "one batch of two recorded, then stopped");

    // The next run meets the failing read: the batch rolls back, nothing of it is written.
    await assert.rejects(runner().run({ failFast: true }), /store unavailable/);
    assert.equal((await localRows()).filter((r) => r.pdq_status !== null).length, 2);

    // A fresh run (another process, after a crash) finishes from the stored progress.
    await runner().run({ failFast: true });
    const rows = await localRows();
    for (const row of rows) {
      if (row.media_id === pendingId) {
        assert.equal(row.pdq_status, null, "a pending upload has no bytes to hash");
        continue;
      }
      if (row.media_id === missingId) {
        assert.deepEqual(
          [row.md5, row.pdq_status, row.pdq_reason],
          [null, "none", "bytes missing from the store"],
        );
        continue;
      }
      const bytes = local.get(row.media_id)!;
      assert.equal(row.md5, md5(bytes), row.media_id);
      if (row.media_type === "image/png") {
        assert.deepEqual(
          [row.pdq, row.pdq_quality, row.pdq_status],
          [FakePdqHasher.hashOf(bytes), 90, "hashed"],
        );
      } else {
        assert.deepEqual([row.pdq, row.pdq_status, row.pdq_reason], [null, "none", "not an image"]);
      }
    }
    for (const row of await remoteRows()) {
      const bytes = remote.get(`${row.media_origin}/${row.media_id}`)!;
      assert.equal(row.md5, md5(bytes));
      const image = row.media_type !== "text/plain";
      assert.equal(row.pdq, image ? FakePdqHasher.hashOf(bytes) : null);
      assert.equal(row.pdq_status, image ? "hashed" : "none");
    }
    // Each image hashed once, apart from the page redone after the failure
    // (at most a page of two, and only its items before the failing read).
    assert.ok(hasher.calls >= 5 + 2, `${hasher.calls} calls`);
    assert.ok(hasher.calls <= 5 + 2 + 2, `${hasher.calls} calls`);
    const [state] = (await runner().states()).filter((s) => s.name === MEDIA_HASH_BACKFILL);
    assert.ok(state && state.processed >= 7 + 1 + 3, JSON.stringify(state));
    assert.equal(state.lastError, "store unavailable");
  });

  it("keeps an outcome the queue recorded while the job was hashing the same row", async () => {
    const db = server.app.database.db;
    const first = [...local.keys()].sort().find((id) => local.get(id)!.length < 5000)!;
    await db
      .updateTable("local_media_repository")
      .set({ pdq: null, pdq_quality: null, pdq_status: null, pdq_reason: null })
      .where("media_id", "=", first)
      .execute();
    const hasher = new FakePdqHasher();
    // While the job hashes the row (before its batch writes), a queue records it.
    const racing = async (input: Buffer | string) => {
      await db
        .updateTable("local_media_repository")
        .set({ pdq: "f".repeat(64), pdq_quality: 77, pdq_status: "hashed" })
        .where("media_id", "=", first)
        .execute();
      return hasher.hash(input);
    };
    const { backfill } = createMediaHashing(server.app.config, {
      database: server.app.database,
      store: server.app.store,
      slots: { withSlot: (fn) => fn() },
      logger,
      hasher: racing,
    });
    await new JobRunner(server.app.database, [backfill], logger, { pauseMs: 0 }).run();
    assert.equal(hasher.calls, 1, "the job hashed the row");
    const row = await db
      .selectFrom("local_media_repository")
      .select(["pdq", "pdq_quality"])
      .where("media_id", "=", first)
      .executeTakeFirstOrThrow();
    assert.deepEqual(row, { pdq: "f".repeat(64), pdq_quality: 77 }, "the first outcome stays");
  });
});

describe("mxcd jobs (CLI) and the media-hash backfill", () => {
  it("lists media-hash-backfill and `jobs run` stores MD5 of imported media", async () => {
    const dir = mkdtempSync(join(tmpdir(), "mxcd-hash-cli-"));
    const config = join(dir, "mxcd.yaml");
    writeFileSync(
      config,
      'server_name: "cli.test"\nregistration_shared_secret: "s"\nlog_level: warn\n',
    );
    assert.equal((await runCli(["migrate", "-c", config], { cwd: dir })).code, 0);
    const database = createDatabase({ engine: "sqlite", path: join(dir, "data", "mxcd.sqlite") });
    const files = new Map<string, Buffer>();
    for (const id of ["aaaa", "bbbb", "cccc"]) {
      const bytes = randomBytes(12_345);
      const path = join(dir, "data", "media", localContentKey(id));
      mkdirSync(dirname(path), { recursive: true });
      writeFileSync(path, bytes);
      files.set(id, bytes);
      await database.db
        .insertInto("local_media_repository")
        .values({
          media_id: id,
          media_type: "application/octet-stream",
          media_length: bytes.length,
          created_ts: 1,
        })
        .execute();
    }
    await database.close();
    const before = await runCli(["jobs", "-c", config], { cwd: dir });
    assert.equal(before.code, 0, before.stderr);
    assert.match(before.stdout, /media-hash-backfill\s+pending/);
    const run = await runCli(["jobs", "run", "-c", config], { cwd: dir });
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /media-hash-backfill\s+running\s+\[#+\]\s+100%\s+3\/3/);
    const check = createDatabase({ engine: "sqlite", path: join(dir, "data", "mxcd.sqlite") });
    const rows = await check.db
      .selectFrom("local_media_repository")
      .select(["media_id", "md5", "pdq_status", "pdq_reason"])
      .orderBy("media_id")
      .execute();
    await check.close();
    assert.deepEqual(
      rows,
      [...files].map(([id, bytes]) => ({
        media_id: id,
        md5: md5(bytes),
        pdq_status: "none",
        pdq_reason: "not an image",
      })),
    );
  });
});
