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
 * The measured limit (bench/support/upload-floor-server.ts): a minimal Node
 * server that reads the same upload from a socket, SHA-256s and MD5s it and
 * writes it to a file, sent the same file by the same curl in the same round
 * (before mxcd in odd rounds, after it in even ones). `mxcd ÷ floor` is the
 * part of the gap that is mxcd's own; the rest is what Node, curl and the
 * kernel cost on this machine. CPU per GiB is reported for both, with the
 * 1-minute load average, because wall time on a shared 2-core machine moves
 * with whatever else runs.
 *
 * Memory the virtual machine gave back (bench/README.md "Eleventh session"):
 * on a VM that returns free guest memory to its host (free page reporting),
 * the first write into memory freed more than a second or so earlier makes the
 * host back each page again, which costs up to 2.5 s of kernel CPU per GiB
 * (0.2 s when the pages were freed just before). Every leg's stored file
 * needs a GiB of new page cache, so without care a leg's time depended on
 * how long ago the previous file was deleted. Before each leg the file is
 * therefore copied to a scratch file, timed, and the scratch deleted: the leg
 * then writes into memory that is backed, as on a server whose page cache is
 * full (new pages come from reclaimed ones) or on bare metal. The first copy
 * of a round is reported as `coldWriteSeconds`: what writing the file alone
 * costs in the cold case this removes.
 *
 * On its own (`npx tsx bench/upload-bench.ts`, after `npm run build`) it
 * starts one mxcd from `dist/` and the floor server and runs
 * `MXCD_BENCH_UPLOAD_ROUNDS` (3) uploads of `MXCD_BENCH_UPLOAD_MIB` (1024)
 * MiB, each timed against a fresh `md5sum` and `sha256sum`, and prints one
 * line per round: a quick check of the upload leg without the full `npm run
 * bench`. `MXCD_BENCH_UPLOAD_FLOOR=0` leaves the floor leg out.
 */
import { copyFileSync, rmSync } from "node:fs";
import { loadavg } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { cpuSeconds } from "./support/cpu-time.js";
import { md5sum, sha256sum, syncDisks, tempDir, writeRandomFile } from "./support/files.js";
import { isMainModule, runMain } from "./support/main.js";
import { type MxcdServer, startMxcd, storedPath, uploadFile } from "./support/mxcd-server.js";
import { RssSampler, type RssSummary } from "./support/rss-sampler.js";
import { findTools, type Tools } from "./support/tools.js";
import {
  startUploadFloor,
  type UploadFloorServer,
  uploadToFloor,
} from "./support/upload-floor-server.js";

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
  /** The floor server's leg of the same round, when it ran. */
  readonly floor?: { readonly seconds: number; readonly cpuSeconds: number };
  /** Copying the file to a new file before the round's first leg (into memory freed seconds ago). */
  readonly coldWriteSeconds: number;
  /** 1-minute load average when the round started. */
  readonly loadAverage: number;
}

export interface UploadBenchContext {
  readonly tools: Tools;
  readonly mxcd: MxcdServer;
  /** Folder for the generated file. */
  readonly dir: string;
  readonly bytes: number;
  /** Reuse this file of `bytes` random bytes (written by an earlier round). */
  readonly existingFile?: string;
  /** The measured limit, uploaded the same file in the same round. */
  readonly floor?: UploadFloorServer;
  /** Upload to the floor before mxcd (alternate between rounds). */
  readonly floorFirst?: boolean;
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

  const loadAverage = loadavg()[0] ?? 0;
  /** Syncs, then backs the leg's memory; returns the scratch copy's seconds. */
  const prepareLeg = async () => {
    await syncDisks(tools);
    return backMemory(file);
  };
  const floorLeg = async () => {
    if (!context.floor) return undefined;
    console.error("upload: streaming to the floor server");
    const copySeconds = await prepareLeg();
    const result = await floorUpload(context.floor, tools.curl, file);
    if (result.sha256 !== hashed.sha256 || result.md5 !== md5ed.md5) {
      throw new Error("the floor server's hashes differ from sha256sum's and md5sum's");
    }
    return { ...result, copySeconds };
  };
  const floorBefore = context.floorFirst ? await floorLeg() : undefined;
  console.error("upload: streaming to mxcd");
  const mxcdCopySeconds = await prepareLeg();
  const upload = await sampledUpload(mxcd, tools.curl, file);
  const stored = await sha256sum(tools, storedPath(mxcd, upload.mediaId));
  if (stored.sha256 !== hashed.sha256) throw new Error("the stored upload differs from the file");
  // The stored copy goes at once: the next round's page cache and disk are the same for both legs.
  rmSync(storedPath(mxcd, upload.mediaId), { force: true });
  const floor = floorBefore ?? (context.floorFirst ? undefined : await floorLeg());
  return {
    loadAverage,
    // The round's first copy is the cold one: its memory was freed before the hash timings.
    coldWriteSeconds: floorBefore?.copySeconds ?? mxcdCopySeconds,
    ...(floor && { floor: { seconds: floor.seconds, cpuSeconds: floor.cpuSeconds } }),
    bytes,
    uploadSeconds: upload.seconds,
    sha256Seconds: hashed.seconds,
    md5Seconds: md5ed.seconds,
    uploadCpuSeconds: upload.cpuSeconds,
    rss: upload.rss,
  };
}

/**
 * Copies `file` to a scratch file beside it and deletes the copy; returns the
 * copy's seconds. The next leg's stored file then lands in memory the VM
 * backed just now (see the file's comment).
 */
function backMemory(file: string): number {
  const scratch = `${file}.scratch`;
  const started = performance.now();
  try {
    copyFileSync(file, scratch);
    return (performance.now() - started) / 1000;
  } finally {
    rmSync(scratch, { force: true });
  }
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

/** One upload to the floor server, with the CPU it used. */
async function floorUpload(floor: UploadFloorServer, curl: string, file: string) {
  const cpuBefore = cpuSeconds(floor.pid);
  const result = await uploadToFloor(floor, curl, file);
  const cpu = cpuSeconds(floor.pid) - cpuBefore;
  rmSync(floor.storedPath, { force: true });
  return { ...result, cpuSeconds: cpu };
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
    const floorServer =
      process.env.MXCD_BENCH_UPLOAD_FLOOR === "0"
        ? undefined
        : await startUploadFloor(dir, cleanup);
    const file = join(dir, "upload.bin");
    const gib = bytes / 1024 ** 3;
    for (let round = 1; round <= rounds; round++) {
      const existingFile = round > 1 ? file : undefined;
      const floorFirst = round % 2 === 1;
      const context = { tools, mxcd, dir, bytes, existingFile, floor: floorServer, floorFirst };
      const result = await benchUpload(context);
      const mibPerSecond = bytes / 1024 ** 2 / result.uploadSeconds;
      const slower = Math.max(result.md5Seconds, result.sha256Seconds);
      const floor = result.floor
        ? `; floor server ${result.floor.seconds.toFixed(2)} s, CPU ${(result.floor.cpuSeconds / gib).toFixed(2)} s/GiB, ` +
          `mxcd ÷ floor ${(result.floor.seconds / result.uploadSeconds).toFixed(2)}× (wall), ` +
          `${(result.uploadCpuSeconds / result.floor.cpuSeconds).toFixed(2)}× (CPU), ` +
          `floor to the slower hash ${(slower / result.floor.seconds).toFixed(2)}×`
        : "";
      console.log(
        `round ${round} (load ${result.loadAverage.toFixed(1)}): upload ${result.uploadSeconds.toFixed(2)} s (${mibPerSecond.toFixed(0)} MiB/s), ` +
          `md5sum ${result.md5Seconds.toFixed(2)} s, sha256sum ${result.sha256Seconds.toFixed(2)} s, ` +
          `ratio to the slower ${(slower / result.uploadSeconds).toFixed(2)}×, ` +
          `to sha256sum ${(result.sha256Seconds / result.uploadSeconds).toFixed(2)}×, ` +
          `mxcd CPU ${(result.uploadCpuSeconds / gib).toFixed(2)} s/GiB, cold write ${result.coldWriteSeconds.toFixed(2)} s, RSS growth ${((result.rss.peak - result.rss.baseline) / 1024 ** 2).toFixed(1)} MiB` +
          floor,
      );
    }
    rmSync(file, { force: true });
  });
}
