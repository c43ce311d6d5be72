/**
 * MD5 on worker threads (src/media/md5-worker-pool.ts; docs/media.md
 * "Hashes while streaming"): the UploadMeter's MD5 and SHA-256 agree with
 * md5sum/sha256sum whether the MD5 ran on the main thread (small uploads) or
 * a worker (large ones, many chunks, several at once); the bytes in flight
 * to a worker are bounded (a worker that never answers stops the stream, it
 * does not buffer it); a worker that dies fails its uploads cleanly and is
 * replaced; one that cannot start (or a closed pool) leaves the MD5 to the
 * main thread; aborted and over-limit uploads let go of their worker state; a
 * closed pool leaves no thread. Then through the server: /metrics counts the
 * bytes hashed off the main thread, and the stored md5 is md5sum's.
 * No timings: every check is a count or a digest.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { after, before, describe, it } from "node:test";
import { Worker } from "node:worker_threads";
import {
  Md5WorkerError,
  Md5WorkerPool,
  type Md5WorkerPoolOptions,
  WORKER_SOURCE,
} from "../src/media/md5-worker-pool.js";
import { UploadMeter, UploadTooLargeError } from "../src/media/upload-meter.js";
import { uploadBytes } from "./support/media.js";
import { metric } from "./support/metrics.js";
import { startTestServer, type TestServer, type TestUser } from "./support/test-server.js";
import { waitFor } from "./support/wait-for.js";

const MiB = 1024 ** 2;
const SMALL: Md5WorkerPoolOptions = {
  thresholdBytes: 256 * 1024,
  batchBytes: 64 * 1024,
  maxInFlightBytes: 256 * 1024,
};

/** `<program> <file>`'s digest (md5sum, sha256sum) of `bytes`. */
function sumOf(program: string, bytes: Buffer): string {
  const dir = mkdtempSync(join(tmpdir(), "mxcd-md5-pool-"));
  try {
    writeFileSync(join(dir, "file"), bytes);
    return execFileSync(program, [join(dir, "file")], { encoding: "utf8" }).split(" ")[0]!;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Streams `bytes` through a meter in uneven chunks; resolves with the digests. */
async function meter(pool: Md5WorkerPool, bytes: Buffer, limit = bytes.length) {
  const m = new UploadMeter(limit, pool);
  const out: Buffer[] = [];
  function* chunks() {
    for (let at = 0, step = 1; at < bytes.length; at += step, step = (step * 7 + 13) % 90_001) {
      yield bytes.subarray(at, at + step);
    }
  }
  await pipeline(Readable.from(chunks()), m, async (source: AsyncIterable<Buffer>) => {
    for await (const chunk of source) out.push(chunk);
  });
  assert.ok(Buffer.concat(out).equals(bytes), "the meter passes every byte on unchanged");
  return { md5: m.md5(), sha256: m.sha256() };
}

/** A worker that takes every message and answers none. */
const silentWorker = () =>
  new Worker(`require("node:worker_threads").parentPort.on("message", () => {})`, { eval: true });

describe("MD5 worker pool", () => {
  it("a large upload in many uneven chunks is hashed on a worker, as md5sum/sha256sum", async () => {
    const pool = new Md5WorkerPool(SMALL);
    try {
      const bytes = randomBytes(9 * MiB + 17);
      const digests = await meter(pool, bytes);
      assert.deepEqual(digests, {
        md5: sumOf("md5sum", bytes),
        sha256: sumOf("sha256sum", bytes),
      });
      assert.equal(pool.stats.offloadedBytes, bytes.length, "every byte hashed off-thread");
      // Batches come back from the worker and are reused: the bound's worth (4), what one
      // chunk of up to 90 KiB adds past it (2), and the one being filled — not one per batch (145).
      const most = 256 / 64 + 2 + 1;
      assert.ok(pool.stats.batchesAllocated <= most, `${pool.stats.batchesAllocated} batches`);
      assert.equal(pool.stats.workers, 1);
      assert.equal(pool.stats.sessions, 0, "the finished upload let go of its worker");
    } finally {
      await pool.close();
    }
  });

  it("an upload below the threshold (and an empty one) stays on the main thread: no worker", async () => {
    const pool = new Md5WorkerPool(SMALL);
    try {
      for (const bytes of [randomBytes(256 * 1024 - 1), Buffer.alloc(0)]) {
        assert.deepEqual(await meter(pool, bytes), {
          md5: sumOf("md5sum", bytes),
          sha256: sumOf("sha256sum", bytes),
        });
      }
      assert.deepEqual(
        [pool.stats.workers, pool.stats.offloadedBytes, pool.stats.mainThreadUploads],
        [0, 0, 2],
      );
    } finally {
      await pool.close();
    }
  });

  it("concurrent uploads share at most maxWorkers workers and each gets its own digest", async () => {
    const pool = new Md5WorkerPool({ ...SMALL, maxWorkers: 2 });
    try {
      const files = Array.from({ length: 6 }, (_, i) => randomBytes(MiB + i * 99_991));
      const digests = await Promise.all(files.map((bytes) => meter(pool, bytes)));
      files.forEach((bytes, i) => {
        assert.equal(digests[i]!.md5, sumOf("md5sum", bytes), `md5 of upload ${i}`);
        assert.equal(digests[i]!.sha256, sumOf("sha256sum", bytes), `sha256 of upload ${i}`);
      });
      assert.equal(pool.stats.workers, 2);
      const total = files.reduce((sum, bytes) => sum + bytes.length, 0);
      assert.equal(pool.stats.offloadedBytes, total);
      assert.equal(pool.stats.sessions, 0);
    } finally {
      await pool.close();
    }
  });

  it("bounds the bytes in flight: a worker that never answers stops the stream; its death fails the upload, the next upload gets a new worker", async () => {
    const spawned: Worker[] = [];
    const pool = new Md5WorkerPool({
      ...SMALL,
      spawn: () => {
        const worker =
          spawned.length === 0 ? silentWorker() : new Worker(WORKER_SOURCE, { eval: true });
        spawned.push(worker);
        return worker;
      },
    });
    try {
      const m = new UploadMeter(64 * MiB, pool);
      let passed = 0;
      m.on("data", (chunk: Buffer) => {
        passed += chunk.length;
      });
      const failed = once(m, "error");
      const chunk = randomBytes(64 * 1024);
      // Far more than the bound; the meter must stop passing bytes on.
      for (let i = 0; i < 64; i++) m.write(chunk);
      // The held bytes (threshold) plus the bound plus one batch and one chunk, at most.
      const most = 256 * 1024 + 256 * 1024 + 64 * 1024 + chunk.length;
      await waitFor(() => pool.stats.sessions === 1 && passed > 0, "the upload on its worker");
      assert.ok(passed <= most, `passed ${passed} bytes on with no answer from the worker`);
      assert.ok(m.writableLength > 0, "the rest waits in the stream, not in the pool");

      await spawned[0]!.terminate();
      const [error] = await failed;
      assert.ok(error instanceof Md5WorkerError, String(error));
      assert.deepEqual([pool.stats.sessions, pool.stats.workerFailures], [0, 1]);

      const bytes = randomBytes(MiB);
      assert.equal((await meter(pool, bytes)).md5, sumOf("md5sum", bytes));
      assert.equal(spawned.length, 2, "a new worker for the next upload");
    } finally {
      await pool.close();
    }
  });

  it("a worker that exits by itself fails its upload (no hang) and counts a failure", async () => {
    const pool = new Md5WorkerPool({
      ...SMALL,
      spawn: () => new Worker(`process.exit(3)`, { eval: true }),
    });
    try {
      await assert.rejects(meter(pool, randomBytes(2 * MiB)), Md5WorkerError);
      assert.deepEqual([pool.stats.sessions, pool.stats.workers], [0, 0]);
      assert.ok(pool.stats.workerFailures >= 1);
    } finally {
      await pool.close();
    }
  });

  it("a worker that cannot start (or a closed pool): the MD5 falls back to the main thread, same digest", async () => {
    const pool = new Md5WorkerPool({
      ...SMALL,
      spawn: () => {
        throw new Error("no thread for you");
      },
    });
    try {
      const bytes = randomBytes(MiB + 1);
      assert.equal((await meter(pool, bytes)).md5, sumOf("md5sum", bytes));
      assert.deepEqual([pool.stats.workers, pool.stats.mainThreadUploads], [0, 1]);
      await pool.close();
      assert.equal((await meter(pool, bytes)).md5, sumOf("md5sum", bytes));
      assert.equal(pool.stats.mainThreadUploads, 2);
    } finally {
      await pool.close();
    }
  });

  it("an aborted and an over-limit upload let go of their worker state", async () => {
    const pool = new Md5WorkerPool(SMALL);
    try {
      const aborted = new UploadMeter(64 * MiB, pool);
      aborted.on("error", () => {});
      aborted.resume();
      for (let i = 0; i < 8; i++) aborted.write(randomBytes(64 * 1024));
      await waitFor(() => pool.stats.sessions === 1, "the aborted upload on a worker");
      aborted.destroy(new Error("client went away"));
      assert.equal(pool.stats.sessions, 0);

      await assert.rejects(meter(pool, randomBytes(2 * MiB), MiB + 5), UploadTooLargeError);
      assert.equal(pool.stats.sessions, 0);
      assert.equal(pool.stats.workerFailures, 0, "no worker died for it");

      // The worker still serves the next one correctly.
      const bytes = randomBytes(MiB);
      assert.equal((await meter(pool, bytes)).md5, sumOf("md5sum", bytes));
    } finally {
      await pool.close();
    }
  });

  it("close() stops every worker and fails an upload in flight", async () => {
    const pool = new Md5WorkerPool({ ...SMALL, spawn: silentWorker });
    const m = new UploadMeter(64 * MiB, pool);
    m.resume();
    const failed = once(m, "error");
    for (let i = 0; i < 16; i++) m.write(randomBytes(64 * 1024));
    await waitFor(() => pool.stats.workers === 1, "a worker");
    await pool.close();
    const [error] = await failed;
    assert.ok(error instanceof Md5WorkerError);
    assert.deepEqual(
      [pool.stats.workers, pool.stats.sessions, pool.stats.workerFailures],
      [0, 0, 0],
    );
    await pool.close();
  });
});

describe("MD5 off the main thread, through the server", () => {
  let server: TestServer;
  let alice: TestUser;
  before(async () => {
    server = await startTestServer("sqlite", { max_upload_size: "32M" });
    alice = await server.user("alice");
  });
  after(() => server.stop());

  const storedMd5 = async (mediaId: string) =>
    (
      await server.app.database.db
        .selectFrom("local_media_repository")
        .select("md5")
        .where("media_id", "=", mediaId)
        .executeTakeFirstOrThrow()
    ).md5;

  it("a 5 MiB upload's MD5 is hashed on a worker (counted on /metrics); a small one's is not", async () => {
    const before = await metric(server.baseUrl, "mxcd_upload_md5_worker_bytes_total");
    const mainBefore = await metric(server.baseUrl, "mxcd_upload_md5_main_thread_total");
    const large = randomBytes(5 * MiB + 3);
    const id = await uploadBytes(alice.http, large);
    assert.equal(await storedMd5(id), sumOf("md5sum", large));
    assert.equal(
      (await metric(server.baseUrl, "mxcd_upload_md5_worker_bytes_total")) - before,
      large.length,
    );
    assert.equal(await metric(server.baseUrl, "mxcd_upload_md5_workers"), 1);
    assert.equal(await metric(server.baseUrl, "mxcd_upload_md5_sessions"), 0);

    const small = randomBytes(10_000);
    const smallId = await uploadBytes(alice.http, small);
    assert.equal(await storedMd5(smallId), sumOf("md5sum", small));
    assert.equal(
      (await metric(server.baseUrl, "mxcd_upload_md5_worker_bytes_total")) - before,
      large.length,
      "the small upload was not sent to a worker",
    );
    assert.equal(
      (await metric(server.baseUrl, "mxcd_upload_md5_main_thread_total")) - mainBefore,
      1,
    );
  });
});
