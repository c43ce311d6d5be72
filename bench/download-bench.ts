/**
 * Download throughput: mxcd's authenticated client v1 download against
 * nginx serving the very same file from the media store, both under the
 * same wrk load. Before measuring, each URL is fetched once and its body
 * checked against the uploaded file, so a fast error page can never pass
 * for a result.
 *
 * mxcd's RSS is sampled while wrk loads it: a baseline over 1 s of rest
 * after every file is uploaded and checked, then the peak during each size's
 * warm-up and measured runs.
 */
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { cpuSeconds } from "./support/cpu-time.js";
import { sha256sum, writeRandomFile } from "./support/files.js";
import {
  downloadUrl,
  localContentPath,
  type MxcdServer,
  uploadFile,
} from "./support/mxcd-server.js";
import { bodyDigest, responseHeaderBytes } from "./support/network.js";
import type { NginxServer } from "./support/nginx-server.js";
import { RssSampler } from "./support/rss-sampler.js";
import type { Tools } from "./support/tools.js";
import { runWrk, type WrkLoad } from "./support/wrk.js";

/** A server's throughput under load. */
export interface Throughput {
  readonly requestsPerSecond: number;
  /** Payload (body) bytes per second: wrk's byte count less each response's headers. */
  readonly bytesPerSecond: number;
  /** CPU seconds the server processes (and their workers) used per second of the run. */
  readonly cpuLoad: number;
  /** The same, for each of the target's processes, in order. */
  readonly cpuLoads: readonly number[];
  /** 99th percentile latency of the measured run (wrk), milliseconds. */
  readonly p99Ms: number;
}

/** One file size measured on both servers. */
export interface DownloadResult {
  readonly label: string;
  readonly bytes: number;
  readonly mxcd: Throughput;
  readonly nginx: Throughput;
  /** Largest RSS sample of mxcd during this size's warm-up and measured runs, bytes. */
  readonly mxcdRssPeak: number;
}

/** Every size, and mxcd's resting RSS before the runs. */
export interface DownloadsResult {
  readonly sizes: readonly DownloadResult[];
  /** Median RSS of mxcd over 1 s of rest before the first run, bytes. */
  readonly rssBaseline: number;
  /** RSS samples taken, baseline included. */
  readonly rssSamples: number;
}

export interface DownloadBenchContext extends LoadContext {
  readonly mxcd: MxcdServer;
  readonly nginx: NginxServer;
  /** Folder for the generated files. */
  readonly dir: string;
}

/** The file sizes the issue asks for. */
export const DOWNLOAD_SIZES = [
  { label: "4 KiB", bytes: 4 * 1024 },
  { label: "1 MiB", bytes: 1024 ** 2 },
  { label: "64 MiB", bytes: 64 * 1024 ** 2 },
] as const;

/** Sampling period of mxcd's RSS. */
const RSS_INTERVAL_MS = 50;
/** Rest before the first run, for the RSS baseline. */
const BASELINE_MS = 1_000;

/** Prepares every size in DOWNLOAD_SIZES, then measures them one after another. */
export async function benchDownloads(context: DownloadBenchContext): Promise<DownloadsResult> {
  const prepared: Prepared[] = [];
  for (const size of DOWNLOAD_SIZES) {
    console.error(`downloads: preparing ${size.label}`);
    prepared.push(await prepare(context, size.label, size.bytes));
  }
  const resting = new RssSampler(context.mxcd.pid, RSS_INTERVAL_MS);
  await sleep(BASELINE_MS);
  const baseline = resting.stop();
  let samples = baseline.samples;
  const sizes: DownloadResult[] = [];
  for (const size of prepared) {
    console.error(`downloads: ${size.label}`);
    const sampler = new RssSampler(context.mxcd.pid, RSS_INTERVAL_MS);
    const mxcd = await measureThroughput(context, size.targets.mxcd).finally(() => sampler.stop());
    const rss = sampler.stop();
    samples += rss.samples;
    const nginx = await measureThroughput(context, size.targets.nginx);
    sizes.push({ label: size.label, bytes: size.bytes, mxcd, nginx, mxcdRssPeak: rss.peak });
  }
  return { sizes, rssBaseline: baseline.baseline, rssSamples: samples };
}

/** A size's file, uploaded to mxcd and checked on both servers. */
interface Prepared {
  readonly label: string;
  readonly bytes: number;
  readonly targets: { readonly mxcd: Target; readonly nginx: Target };
}

async function prepare(
  context: DownloadBenchContext,
  label: string,
  bytes: number,
): Promise<Prepared> {
  const { tools, mxcd, nginx } = context;
  const file = join(context.dir, `download-${bytes}.bin`);
  await writeRandomFile(tools, file, bytes);
  const { sha256 } = await sha256sum(tools, file);
  const { mediaId } = await uploadFile(mxcd, tools.curl, file, `${file}.response`);
  const targets = {
    mxcd: { url: downloadUrl(mxcd, mediaId), headers: mxcd.authHeaders, pids: [mxcd.pid] },
    nginx: { url: `${nginx.baseUrl}/${localContentPath(mediaId)}`, headers: {}, pids: [nginx.pid] },
  };
  for (const [name, target] of Object.entries(targets)) {
    const body = await bodyDigest(target.url, target.headers);
    if (body.sha256 !== sha256 || body.bytes !== bytes) {
      throw new Error(`${name} served different bytes for ${target.url}`);
    }
  }
  return { label, bytes, targets };
}

/** One server's URL for the file, the headers it needs, and the processes to charge CPU to. */
export interface Target {
  readonly url: string;
  readonly headers: Record<string, string>;
  /** Server processes (with their children) whose CPU time the run is charged. */
  readonly pids: readonly number[];
}

/** How to load a target with wrk. */
export interface LoadContext {
  readonly tools: Tools;
  readonly wrkScript: string;
  readonly load: WrkLoad;
  readonly warmupSeconds: number;
}

/** A short warm-up run (JIT, page cache, connections), then the measured run. */
export async function measureThroughput(context: LoadContext, target: Target): Promise<Throughput> {
  const { tools, wrkScript, load } = context;
  const { url, headers } = target;
  if (context.warmupSeconds > 0) {
    await runWrk(tools.wrk, wrkScript, url, headers, { ...load, seconds: context.warmupSeconds });
  }
  const headerBytes = await responseHeaderBytes(url, headers);
  const cpuBefore = target.pids.map(cpuSeconds);
  const run = await runWrk(tools.wrk, wrkScript, url, headers, load);
  const cpuLoads = target.pids.map((pid, i) => (cpuSeconds(pid) - cpuBefore[i]!) / run.seconds);
  const errors = Object.values(run.socketErrors).reduce((a, b) => a + b, 0);
  if (errors > 0) console.error(`  ${url}: socket errors ${JSON.stringify(run.socketErrors)}`);
  return {
    requestsPerSecond: run.requests / run.seconds,
    bytesPerSecond: (run.bytes - run.requests * headerBytes) / run.seconds,
    cpuLoad: cpuLoads.reduce((a, b) => a + b, 0),
    cpuLoads,
    p99Ms: run.p99Ms,
  };
}
