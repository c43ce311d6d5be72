/**
 * Download throughput: mxcd's authenticated client v1 download against
 * nginx serving the very same file from the media store, both under the
 * same wrk load. Before measuring, each URL is fetched once and its body
 * checked against the uploaded file, so a fast error page can never pass
 * for a result.
 */
import { join } from "node:path";
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
import type { Tools } from "./support/tools.js";
import { runWrk, type WrkLoad } from "./support/wrk.js";

/** A server's throughput under load. */
export interface Throughput {
  readonly requestsPerSecond: number;
  /** Payload (body) bytes per second: wrk's byte count less each response's headers. */
  readonly bytesPerSecond: number;
  /** CPU seconds the server process (and its workers) used per second of the run. */
  readonly cpuLoad: number;
}

/** One file size measured on both servers. */
export interface DownloadResult {
  readonly label: string;
  readonly bytes: number;
  readonly mxcd: Throughput;
  readonly nginx: Throughput;
}

export interface DownloadBenchContext {
  readonly tools: Tools;
  readonly mxcd: MxcdServer;
  readonly nginx: NginxServer;
  /** Folder for the generated files. */
  readonly dir: string;
  readonly wrkScript: string;
  readonly load: WrkLoad;
  readonly warmupSeconds: number;
}

/** The file sizes the issue asks for. */
export const DOWNLOAD_SIZES = [
  { label: "4 KiB", bytes: 4 * 1024 },
  { label: "1 MiB", bytes: 1024 ** 2 },
  { label: "64 MiB", bytes: 64 * 1024 ** 2 },
] as const;

/** Measures every size in DOWNLOAD_SIZES, one after another. */
export async function benchDownloads(context: DownloadBenchContext): Promise<DownloadResult[]> {
  const results: DownloadResult[] = [];
  for (const size of DOWNLOAD_SIZES) {
    console.error(`downloads: ${size.label}`);
    results.push(await benchSize(context, size.label, size.bytes));
  }
  return results;
}

async function benchSize(
  context: DownloadBenchContext,
  label: string,
  bytes: number,
): Promise<DownloadResult> {
  const { tools, mxcd, nginx } = context;
  const file = join(context.dir, `download-${bytes}.bin`);
  await writeRandomFile(tools, file, bytes);
  const { sha256 } = await sha256sum(tools, file);
  const { mediaId } = await uploadFile(mxcd, tools.curl, file, `${file}.response`);
  const targets = {
    mxcd: { url: downloadUrl(mxcd, mediaId), headers: mxcd.authHeaders, pid: mxcd.pid },
    nginx: { url: `${nginx.baseUrl}/${localContentPath(mediaId)}`, headers: {}, pid: nginx.pid },
  };
  for (const [name, target] of Object.entries(targets)) {
    const body = await bodyDigest(target.url, target.headers);
    if (body.sha256 !== sha256 || body.bytes !== bytes) {
      throw new Error(`${name} served different bytes for ${target.url}`);
    }
  }
  return {
    label,
    bytes,
    mxcd: await measure(context, targets.mxcd),
    nginx: await measure(context, targets.nginx),
  };
}

/** One server's URL for the file, the headers it needs, and the process to charge CPU to. */
interface Target {
  readonly url: string;
  readonly headers: Record<string, string>;
  readonly pid: number;
}

/** A short warm-up run (JIT, page cache, connections), then the measured run. */
async function measure(context: DownloadBenchContext, target: Target): Promise<Throughput> {
  const { tools, wrkScript, load } = context;
  const { url, headers } = target;
  if (context.warmupSeconds > 0) {
    await runWrk(tools.wrk, wrkScript, url, headers, { ...load, seconds: context.warmupSeconds });
  }
  const headerBytes = await responseHeaderBytes(url, headers);
  const cpuBefore = cpuSeconds(target.pid);
  const run = await runWrk(tools.wrk, wrkScript, url, headers, load);
  const cpu = cpuSeconds(target.pid) - cpuBefore;
  const errors = Object.values(run.socketErrors).reduce((a, b) => a + b, 0);
  if (errors > 0) console.error(`  ${url}: socket errors ${JSON.stringify(run.socketErrors)}`);
  return {
    requestsPerSecond: run.requests / run.seconds,
    bytesPerSecond: (run.bytes - run.requests * headerBytes) / run.seconds,
    cpuLoad: cpu / run.seconds,
  };
}
