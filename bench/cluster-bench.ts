/**
 * Three processes versus one: 1 MiB downloads through nginx in front of
 * three `mxcd serve` processes sharing one PostgreSQL database and one
 * filesystem media store, against the same nginx in front of one of them.
 *
 * The three processes run the same config but for the port (and each has
 * its own config file); the first registers the bench user, each logs in.
 * One nginx (reverse proxy: `proxy_buffering off`, `proxy_request_buffering
 * off`, keep-alive connections to the upstream) listens on two ports: one
 * proxies to the first process alone, the other round-robins over all
 * three. The same wrk load as the direct downloads runs against each, after
 * the body is checked through both, twice, alternating (one, three, one,
 * three), and the means are compared; then, for context, the same load runs
 * against the first process directly (PostgreSQL, no nginx).
 *
 * On a machine with few cores, wrk, nginx and every mxcd process share them:
 * more processes can only help as far as one process left cores idle.
 */
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { type LoadContext, measureThroughput, type Throughput } from "./download-bench.js";
import type { Cleanup } from "./support/cleanup.js";
import { sha256sum, writeRandomFile } from "./support/files.js";
import { type MxcdServer, startMxcd, uploadFile } from "./support/mxcd-server.js";
import { bodyDigest } from "./support/network.js";
import { startNginxProxy } from "./support/nginx-server.js";

/** The file size measured: the middle download size. */
const FILE_BYTES = 1024 ** 2;
/** Measured runs of each setup, alternating between them. */
const ROUNDS = 2;

export interface ClusterBenchOptions extends LoadContext {
  /** `dist/src/cli/main.js`. */
  readonly cli: string;
  /** An empty folder for the configs, the media store and nginx's files. */
  readonly dir: string;
  /** URL of an empty PostgreSQL database. */
  readonly databaseUrl: string;
  /** How many mxcd processes in the larger setup. */
  readonly processes: number;
  /** nginx `worker_processes`. */
  readonly nginxWorkers: string;
  /** nginx `proxy_buffer_size`; its default when unset. */
  readonly proxyBufferSize?: string | undefined;
}

export interface ClusterResult {
  readonly bytes: number;
  readonly processes: number;
  /**
   * Throughput through nginx, the mean over the rounds; `cpuLoad` counts
   * nginx and the mxcd processes behind it, `cpuLoads` is nginx's, then each
   * mxcd process's.
   */
  readonly one: Throughput;
  readonly many: Throughput;
  /** Each round's run. */
  readonly oneRuns: readonly Throughput[];
  readonly manyRuns: readonly Throughput[];
  /** For context: the first process alone without nginx (`cpuLoads`: that process). */
  readonly direct: Throughput;
}

export async function benchCluster(
  options: ClusterBenchOptions,
  cleanup: Cleanup,
): Promise<ClusterResult> {
  const { tools, dir } = options;
  const mediaStore = join(dir, "media");
  const servers: MxcdServer[] = [];
  console.error(`cluster: starting ${options.processes} mxcd processes on PostgreSQL`);
  for (let i = 0; i < options.processes; i++) {
    const processDir = join(dir, `mxcd-${i}`);
    mkdirSync(processDir);
    servers.push(
      await startMxcd(
        {
          cli: options.cli,
          dir: processDir,
          database: { engine: "postgres", url: options.databaseUrl },
          mediaStore,
          signingKeyPath: join(dir, "signing.key"),
          registerUser: i === 0,
        },
        cleanup,
      ),
    );
  }
  const [first] = servers as [MxcdServer, ...MxcdServer[]];
  const nginxDir = join(dir, "nginx");
  mkdirSync(nginxDir);
  const proxy = await startNginxProxy(
    {
      nginx: tools.nginx,
      dir: nginxDir,
      workers: options.nginxWorkers,
      bufferSize: options.proxyBufferSize,
      upstreams: [[first.port], servers.map((s) => s.port)],
    },
    cleanup,
  );

  const file = join(dir, "download.bin");
  await writeRandomFile(tools, file, FILE_BYTES);
  const { sha256 } = await sha256sum(tools, file);
  const { mediaId } = await uploadFile(first, tools.curl, file, `${file}.json`);
  const path = `/_matrix/client/v1/media/download/${first.serverName}/${mediaId}`;
  const [oneUrl, manyUrl] = proxy.baseUrls.map((base) => `${base}${path}`) as [string, string];
  // Every process must serve it (and the token must be good on each), directly and through nginx.
  for (const url of [...servers.map((s) => `${s.baseUrl}${path}`), oneUrl, manyUrl]) {
    const body = await bodyDigest(url, first.authHeaders);
    if (body.sha256 !== sha256 || body.bytes !== FILE_BYTES) {
      throw new Error(`${url} served different bytes`);
    }
  }

  const run = (label: string, url: string, behind: readonly MxcdServer[]) => {
    console.error(`cluster: ${label}`);
    const pids = [proxy.pid, ...behind.map((s) => s.pid)];
    return measureThroughput(options, { url, headers: first.authHeaders, pids });
  };
  // Alternated (one, many, one, many...) so drift in the machine's state affects both alike.
  const oneRuns: Throughput[] = [];
  const manyRuns: Throughput[] = [];
  for (let round = 1; round <= ROUNDS; round++) {
    oneRuns.push(await run(`nginx → one process (round ${round})`, oneUrl, [first]));
    const label = `nginx → ${servers.length} processes (round ${round})`;
    manyRuns.push(await run(label, manyUrl, servers));
  }
  console.error("cluster: one process, direct");
  const direct = await measureThroughput(options, {
    url: `${first.baseUrl}${path}`,
    headers: first.authHeaders,
    pids: [first.pid],
  });
  return {
    bytes: FILE_BYTES,
    processes: servers.length,
    one: meanThroughput(oneRuns),
    many: meanThroughput(manyRuns),
    oneRuns,
    manyRuns,
    direct,
  };
}

/** The mean of each figure over several runs of the same setup. */
function meanThroughput(runs: readonly Throughput[]): Throughput {
  const mean = (pick: (t: Throughput) => number) =>
    runs.reduce((sum, t) => sum + pick(t), 0) / runs.length;
  const width = Math.max(...runs.map((t) => t.cpuLoads.length));
  return {
    requestsPerSecond: mean((t) => t.requestsPerSecond),
    bytesPerSecond: mean((t) => t.bytesPerSecond),
    cpuLoad: mean((t) => t.cpuLoad),
    cpuLoads: Array.from({ length: width }, (_, i) => mean((t) => t.cpuLoads[i] ?? 0)),
    p99Ms: mean((t) => t.p99Ms),
  };
}
