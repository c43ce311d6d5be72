/**
 * Upload throughput and memory: a large random file streamed to mxcd, timed
 * against `sha256sum` and `md5sum` of the same file (mxcd computes both hashes
 * of every upload, SHA-256 on its main thread and MD5 on a worker, so the
 * slower of the two is the floor), while the server's RSS is sampled every 50 ms.
 *
 * All read the file from the page cache: sha256sum runs once untimed first
 * (the warm-up read), then md5sum and sha256sum timed, back to back. The new file is synced to disk before, so
 * its write-back overlaps neither timing. The stored copy is hashed
 * afterwards to check that the upload arrived intact.
 *
 * On its own (`npx tsx bench/upload-bench.ts`, after `npm run build`) it
 * starts one mxcd from `dist/` and runs `MXCD_BENCH_UPLOAD_ROUNDS` (3)
 * uploads of `MXCD_BENCH_UPLOAD_MIB` (1024) MiB, each timed against a fresh
 * `md5sum` and `sha256sum`, and prints one line per round: a quick check of the upload
 * leg without the full `npm run bench`.
 */
import { rmSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { cpuSeconds } from "./support/cpu-time.js";
import { md5sum, sha256sum, syncDisks, tempDir, writeRandomFile } from "./support/files.js";
import { isMainModule, runMain } from "./support/main.js";
import { type MxcdServer, startMxcd, storedPath, uploadFile } from "./support/mxcd-server.js";
import { RssSampler, type RssSummary } from "./support/rss-sampler.js";
import { findTools, type Tools } from "./support/tools.js";

/** Sampling period of the server's RSS. */
const RSS_INTERVAL_MS = 50;
/** How long RSS is sampled before the upload starts, for the baseline. */
const BASELINE_MS = 1_000;

/** Timings of the upload and of sha256sum, and the server's RSS meanwhile. */
export interface UploadResult {
  readonly bytes: number;
  readonly uploadSeconds: number;
  readonly sha256Seconds: number;
  readonly md5Seconds: number;
  /** CPU seconds (user + system) the server used during the upload. */
  readonly uploadCpuSeconds: number;
  readonly rss: RssSummary;
}

export interface UploadBenchContext {
  readonly tools: Tools;
  readonly mxcd: MxcdServer;
  /** Folder for the generated file. */
  readonly dir: string;
  readonly bytes: number;
  /** Reuse this file of `bytes` random bytes (written by an earlier round). */
  readonly existingFile?: string;
}

/** Generates the file, times sha256sum, then times the upload while sampling RSS. */
export async function benchUpload(context: UploadBenchContext): Promise<UploadResult> {
  const { tools, mxcd, bytes } = context;
  const file = context.existingFile ?? join(context.dir, "upload.bin");
  if (!context.existingFile) {
    console.error(`upload: writing ${bytes} random bytes`);
    await writeRandomFile(tools, file, bytes);
    await syncDisks(tools);
  }
  console.error("upload: sha256sum (warm-up read), then md5sum and sha256sum timed");
  await sha256sum(tools, file);
  const md5ed = await md5sum(tools, file);
  const hashed = await sha256sum(tools, file);

  console.error("upload: streaming to mxcd");
  const upload = await sampledUpload(mxcd, tools.curl, file);
  const stored = await sha256sum(tools, storedPath(mxcd, upload.mediaId));
  if (stored.sha256 !== hashed.sha256) throw new Error("the stored upload differs from the file");
  return {
    bytes,
    uploadSeconds: upload.seconds,
    sha256Seconds: hashed.seconds,
    md5Seconds: md5ed.seconds,
    uploadCpuSeconds: upload.cpuSeconds,
    rss: upload.rss,
  };
}

/** Uploads `file` while sampling the server's RSS, from BASELINE_MS before the upload to its end. */
async function sampledUpload(mxcd: MxcdServer, curl: string, file: string) {
  const sampler = new RssSampler(mxcd.pid, RSS_INTERVAL_MS);
  try {
    await sleep(BASELINE_MS);
    sampler.markStart();
    const cpuBefore = cpuSeconds(mxcd.pid);
    const upload = await uploadFile(mxcd, curl, file, `${file}.response`);
    const cpu = cpuSeconds(mxcd.pid) - cpuBefore;
    return { ...upload, cpuSeconds: cpu, rss: sampler.stop() };
  } finally {
    sampler.stop();
  }
}

if (isMainModule(import.meta.url)) {
  await runMain(async (cleanup) => {
    const cli = join(import.meta.dirname, "..", "dist", "src", "cli", "main.js");
    const tools = findTools();
    const dir = tempDir(cleanup, "mxcd-upload-bench-");
    const bytes = Math.round(Number(process.env.MXCD_BENCH_UPLOAD_MIB ?? 1024) * 1024 ** 2);
    const rounds = Math.max(1, Math.round(Number(process.env.MXCD_BENCH_UPLOAD_ROUNDS ?? 3)));
    const maxUploadSize = bytes > 2 * 1024 ** 3 ? String(bytes) : "2G";
    const mxcd = await startMxcd({ cli, dir, maxUploadSize }, cleanup);
    const file = join(dir, "upload.bin");
    for (let round = 1; round <= rounds; round++) {
      const existingFile = round > 1 ? file : undefined;
      const result = await benchUpload({ tools, mxcd, dir, bytes, existingFile });
      const mibPerSecond = bytes / 1024 ** 2 / result.uploadSeconds;
      const floor = Math.max(result.md5Seconds, result.sha256Seconds);
      console.log(
        `round ${round}: upload ${result.uploadSeconds.toFixed(2)} s (${mibPerSecond.toFixed(0)} MiB/s), ` +
          `md5sum ${result.md5Seconds.toFixed(2)} s, sha256sum ${result.sha256Seconds.toFixed(2)} s, ` +
          `ratio to the slower ${(floor / result.uploadSeconds).toFixed(2)}×, ` +
          `to sha256sum ${(result.sha256Seconds / result.uploadSeconds).toFixed(2)}×, ` +
          `mxcd CPU ${result.uploadCpuSeconds.toFixed(2)} s, RSS growth ${((result.rss.peak - result.rss.baseline) / 1024 ** 2).toFixed(1)} MiB`,
      );
    }
    rmSync(file, { force: true });
  });
}
