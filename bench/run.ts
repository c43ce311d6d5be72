/**
 * `npm run bench`: mxcd against the physical limits of this machine, in one
 * run on loopback (DESIGN.md, "Performance principles"):
 *
 * 1. downloads of 4 KiB, 1 MiB and 64 MiB files, mxcd versus nginx serving
 *    the same files, under the same wrk load, with mxcd's RSS meanwhile;
 * 2. a 1 GiB streamed upload versus sha256sum of the same file, and the
 *    server's RSS during it;
 * 3. thumbnails per second versus vipsthumbnail over the same images;
 * 4. 1 MiB downloads through nginx in front of three mxcd processes on one
 *    PostgreSQL database versus in front of one;
 * 5. the media admin API at 1,000,000 media rows (PostgreSQL and SQLite);
 * 6. the standalone benches: quarantine feed at 10,000 vs 10,000,000
 *    records, room media at 10,000 vs 1,000,000 events, remote media time
 *    to first byte.
 *
 * Prints machine, settings and results, and writes them to bench/RESULTS.md.
 * Environment knobs are listed in bench/README.md. Everything started or
 * created here is stopped and removed on exit, failure or Ctrl-C; a part
 * that fails is reported as failed, the others still run, and the exit
 * status is 1.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { loadavg } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import { benchAdmin } from "./admin-bench.js";
import { attachedSettingsFromEnv, benchAttached } from "./attached-bench.js";
import { benchCluster } from "./cluster-bench.js";
import { benchDownloads, type LoadContext } from "./download-bench.js";
import { benchFederationTtfb, remoteMibFromEnv } from "./federation-ttfb-bench.js";
import { benchQuarantineFeed, feedSizesFromEnv } from "./quarantine-feed-bench.js";
import { type Outcome, renderReport, type SectionResults } from "./report.js";
import { benchRoomMedia, roomMediaSizesFromEnv } from "./room-media-bench.js";
import { Cleanup, describeError } from "./support/cleanup.js";
import { type EngineFactory, postgresEngine, sqliteEngine } from "./support/engines.js";
import { envSeconds } from "./support/env-seconds.js";
import { tempDir } from "./support/files.js";
import { describeMachine } from "./support/machine.js";
import { runMain } from "./support/main.js";
import { count } from "./support/markdown.js";
import { startMxcd } from "./support/mxcd-server.js";
import { startNginx } from "./support/nginx-server.js";
import { PostgresMissingError, SharedPostgres } from "./support/postgres.js";
import { withKeptSections } from "./support/results-file.js";
import { findTools, type Tools } from "./support/tools.js";
import { writeWrkScript } from "./support/wrk.js";
import { benchThumbnails } from "./thumbnail-bench.js";
import { benchUpload } from "./upload-bench.js";

const REPO = fileURLToPath(new URL("..", import.meta.url));
const CLI = join(REPO, "dist", "src", "cli", "main.js");

/** The parts of the run, in order; MXCD_BENCH_ONLY picks some. */
const SECTIONS = [
  "downloads",
  "attached",
  "upload",
  "thumbnails",
  "cluster",
  "admin",
  "feed",
  "room-media",
  "federation",
] as const;
type Section = (typeof SECTIONS)[number];

/** What the environment may change, with the issues' values as defaults. */
interface Settings {
  readonly seconds: number;
  readonly warmupSeconds: number;
  readonly uploadBytes: number;
  readonly nginxWorkers: string;
  readonly proxyWorkers: string;
  readonly proxyBufferSize: string | undefined;
  readonly thumbnailImages: number;
  readonly mediaRows: number;
  readonly feedSizes: readonly number[];
  readonly roomMediaSizes: readonly number[];
  readonly remoteMib: number;
  readonly attachedRounds: number;
  readonly coldTokens: number;
  readonly cpuProfileDir: string | undefined;
  readonly resultsPath: string;
  readonly only: ReadonlySet<Section>;
}

function readSettings(env: NodeJS.ProcessEnv): Settings {
  const number = (name: string, fallback: number, min = 0) => {
    const value = Number(env[name] ?? fallback);
    if (!Number.isFinite(value) || value < min)
      throw new Error(`${name} must be a number >= ${min}`);
    return value;
  };
  return {
    seconds: Math.max(
      1,
      Math.round(envSeconds("MXCD_BENCH_DURATION", env.MXCD_BENCH_DURATION, 10)),
    ),
    warmupSeconds: Math.round(envSeconds("MXCD_BENCH_WARMUP", env.MXCD_BENCH_WARMUP, 2)),
    uploadBytes: Math.round(number("MXCD_BENCH_UPLOAD_MIB", 1024, 1) * 1024 ** 2),
    nginxWorkers: env.MXCD_BENCH_NGINX_WORKERS ?? "1",
    proxyWorkers: env.MXCD_BENCH_PROXY_WORKERS ?? "auto",
    proxyBufferSize: env.MXCD_BENCH_PROXY_BUFFER_SIZE || undefined,
    thumbnailImages: Math.round(number("MXCD_BENCH_THUMBNAILS", 100, 1)),
    mediaRows: Math.round(number("MXCD_BENCH_MEDIA_ROWS", 1_000_000, 10_000)),
    feedSizes: feedSizesFromEnv(env),
    roomMediaSizes: roomMediaSizesFromEnv(env),
    remoteMib: remoteMibFromEnv(env),
    attachedRounds: attachedSettingsFromEnv(env).rounds,
    coldTokens: attachedSettingsFromEnv(env).coldTokens,
    cpuProfileDir: env.MXCD_BENCH_CPU_PROF || undefined,
    resultsPath: env.MXCD_BENCH_RESULTS ?? join(REPO, "bench", "RESULTS.md"),
    only: readOnly(env.MXCD_BENCH_ONLY),
  };
}

function readOnly(value: string | undefined): ReadonlySet<Section> {
  if (!value) return new Set(SECTIONS);
  const names = value.split(",").map((name) => name.trim());
  const unknown = names.filter((name) => !(SECTIONS as readonly string[]).includes(name));
  if (unknown.length > 0) {
    throw new Error(`MXCD_BENCH_ONLY: unknown part(s) ${unknown.join(", ")}; known: ${SECTIONS}`);
  }
  return new Set(names as Section[]);
}

/** Human-readable description of how this run measured, for the report. */
function describeSettings(settings: Settings, maxUploadSize: string): string[] {
  const mib = settings.uploadBytes / 1024 ** 2;
  const wrk = `wrk -t 2 -c 32 -d ${settings.seconds}s`;
  const [small, large] = [settings.feedSizes[0] ?? 0, settings.feedSizes.at(-1) ?? 0];
  return [
    `Load (downloads, three processes vs one): \`${wrk}\` per server and size, after an untimed ${settings.warmupSeconds} s warm-up run of the same load; everything on 127.0.0.1.`,
    "mxcd: `node dist/src/cli/main.js serve` as a child process, `log_level: warn`, filesystem media store; SQLite unless said otherwise; downloads use the authenticated `GET /_matrix/client/v1/media/download/...` with a Bearer token.",
    `nginx (reference file server): \`worker_processes ${settings.nginxWorkers}\`, \`sendfile on\`, \`tcp_nopush on\`, \`access_log off\`, serving the media store folder itself.`,
    "RSS under download load: VmRSS of the mxcd process every 50 ms; baseline = median over 1 s of rest after every download file is uploaded and checked; peak = largest sample during the mxcd warm-up and measured wrk runs of all sizes.",
    `Upload: ${mib} MiB of random data, \`POST /_matrix/media/v3/upload\` streamed by \`curl -T\` (with Content-Length), \`max_upload_size: ${maxUploadSize}\`; the file is synced to disk, then \`sha256sum\` is timed after one untimed run, so both read it from the page cache; before the upload the file is copied to a scratch file that is deleted at once, so the upload writes into memory the virtual machine backs (bench/upload-bench.ts). RSS every 50 ms; baseline = median over the 1 s before the upload, peak = largest sample until its response.`,
    `Thumbnails: ${settings.thumbnailImages} photo-like JPEGs (2000×1500, quality 85: gradients, a wave, soft blobs and per-pixel noise, each different) plus one untimed warm-up image. mxcd with \`dynamic_thumbnails: true\`, \`thumbnail_sizes: []\` (nothing pre-generated) and the default \`max_thumbnail_concurrency: 2\`; the client requests one \`320×240 method=scale\` thumbnail of each image (client v1 endpoint, Bearer token), 2 requests in flight. Reference: \`vipsthumbnail --size 320x240 -o OUT/%s.jpg[Q=80] FILES\` (quality 80 as mxcd writes) run as 2 processes side by side, each over half of the files, timed once before and once after mxcd; the mean is the reference.`,
    `Three processes vs one: one throwaway PostgreSQL cluster (fsync off), one filesystem media store, three \`mxcd serve\` processes with the same config except the port; one nginx (\`worker_processes ${settings.proxyWorkers}\`) proxying 1 MiB downloads to an upstream of all three ports, or of the first alone (measured alternately, two rounds each, means compared), with the \`location\` settings of docs/deployment.md (\`proxy_buffering off\`, \`proxy_request_buffering off\`, \`keepalive 32\` HTTP/1.1 connections to the upstream, ${settings.proxyBufferSize ? `\`proxy_buffer_size ${settings.proxyBufferSize}\`` : "nginx's default `proxy_buffer_size`"}). PostgreSQL pool: mxcd's default \`max_connections: 10\` per process.`,
    `Attached mode: a standalone and an attached mxcd (the scripted homeserver of the tests, in this process, \`access_token_cache.ttl: 1h\`) and nginx, 4 KiB authenticated downloads with the same wrk load, ${settings.attachedRounds} rounds in rotating order; cold tokens: 20 tokens × 3 requests one at a time, then ${settings.coldTokens} tokens × 4 requests all at once.`,
    `Media admin API: ${count(settings.mediaRows)} local media rows inserted with SQL into a fresh database (PostgreSQL: a database in the throwaway cluster; SQLite: a file), then an in-process server (from \`src/\`, via tsx) is called over HTTP on loopback: 100 timed calls per query after 5 untimed.`,
    `Quarantine feed: ${count(small)} vs ${count(large)} records, 200 random pages each; room media: ${count(settings.roomMediaSizes[0] ?? 0)} vs ${count(settings.roomMediaSizes[1] ?? 0)} events, 50 calls per room after 5 untimed; remote media: ${settings.remoteMib} MiB between two in-process servers. All in-process (from \`src/\`, via tsx), as their standalone scripts run.`,
  ];
}

async function main(cleanup: Cleanup): Promise<void> {
  const runStarted = performance.now();
  const settings = readSettings(process.env);
  const tools = findTools();
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run build\` first`);
  const machine = await describeMachine(tools);
  warnIfBusy();
  const root = tempDir(cleanup, "mxcd-bench-");
  const postgres = new SharedPostgres(cleanup);
  const maxUploadSize = settings.uploadBytes > 2 * 1024 ** 3 ? String(settings.uploadBytes) : "2G";
  const wrkScript = writeWrkScript(root);
  const load = { threads: 2, connections: 32, seconds: settings.seconds };
  const loadContext = { tools, wrkScript, load, warmupSeconds: settings.warmupSeconds };
  const results: SectionResults = {};
  let failed = false;

  /** Runs one part with its own cleanup (run when it ends, however it ends); records the outcome. */
  const part = async <T>(
    names: readonly Section[],
    work: (local: Cleanup, dir: string) => Promise<T>,
  ): Promise<Outcome<T> | undefined> => {
    if (!names.some((name) => settings.only.has(name))) return undefined;
    const local = new Cleanup();
    cleanup.add(`clean up ${names.join(" and ")}`, () => local.run());
    const dir = join(root, names.join("-"));
    mkdirSync(dir);
    const started = performance.now();
    try {
      const value = await work(local, dir);
      return { status: "ok", value, seconds: (performance.now() - started) / 1000 };
    } catch (error) {
      if (error instanceof PostgresMissingError)
        return { status: "skipped", reason: error.message };
      failed = true;
      console.error(`${names.join(" and ")} failed:`, error);
      return { status: "failed", error: describeError(error) };
    } finally {
      await local.run();
    }
  };
  /** PostgreSQL (the issues' figures), then SQLite; SQLite alone when PostgreSQL is missing. */
  const engines = async (): Promise<EngineFactory[]> => {
    const sqlite = sqliteEngine(join(root, "sqlite"));
    try {
      return [postgresEngine(await postgres.get()), sqlite];
    } catch (error) {
      if (!(error instanceof PostgresMissingError)) throw error;
      console.error(`${error.message}: SQLite only`);
      return [sqlite];
    }
  };
  mkdirSync(join(root, "sqlite"));

  const transfers = await part(["downloads", "upload"], (local, dir) =>
    benchTransfers(settings, tools, loadContext, maxUploadSize, local, dir),
  );
  if (transfers?.status === "ok") {
    const { downloads, upload } = transfers.value;
    if (downloads) results.downloads = { status: "ok", ...downloads };
    if (upload) results.upload = { status: "ok", ...upload };
  } else if (transfers) {
    if (settings.only.has("downloads")) results.downloads = transfers;
    if (settings.only.has("upload")) results.upload = transfers;
  }
  results.attached = await part(["attached"], (local, dir) =>
    benchAttached(
      {
        ...loadContext,
        cli: CLI,
        dir,
        rounds: settings.attachedRounds,
        coldTokens: settings.coldTokens,
        nginxWorkers: settings.nginxWorkers,
        ...(settings.cpuProfileDir && {
          nodeFlags: ["--cpu-prof", `--cpu-prof-dir=${settings.cpuProfileDir}`],
        }),
      },
      local,
    ),
  );
  results.thumbnails = await part(["thumbnails"], (local, dir) =>
    benchThumbnails(
      { tools, cli: CLI, dir, images: settings.thumbnailImages, width: 2000, height: 1500 },
      local,
    ),
  );
  results.cluster = await part(["cluster"], async (local, dir) =>
    benchCluster(
      {
        ...loadContext,
        cli: CLI,
        dir,
        databaseUrl: await (await postgres.get()).createDatabase("cluster_bench"),
        processes: 3,
        nginxWorkers: settings.proxyWorkers,
        proxyBufferSize: settings.proxyBufferSize,
      },
      local,
    ),
  );
  results.admin = await part(["admin"], async (local, dir) =>
    benchAdmin({ rows: settings.mediaRows, engines: await engines(), dir }, local),
  );
  results.feed = await part(["feed"], async (local, dir) =>
    benchQuarantineFeed({ sizes: settings.feedSizes, engines: await engines(), dir }, local),
  );
  results.roomMedia = await part(["room-media"], async (local) =>
    benchRoomMedia({ sizes: settings.roomMediaSizes, engines: await engines() }, local),
  );
  results.federation = await part(["federation"], (local, dir) =>
    benchFederationTtfb({ mib: settings.remoteMib, dir }, local),
  );

  const report = renderReport({
    date: new Date(),
    totalSeconds: (performance.now() - runStarted) / 1000,
    machine,
    settings: describeSettings(settings, maxUploadSize),
    results,
  });
  // The standalone benches' sections (hot path, import, URL previews) stay as they were.
  const previous = existsSync(settings.resultsPath)
    ? readFileSync(settings.resultsPath, "utf8")
    : "";
  writeFileSync(settings.resultsPath, withKeptSections(report, previous));
  console.log(report);
  console.error(`written to ${settings.resultsPath}`);
  if (settings.cpuProfileDir) console.error(`mxcd CPU profile in ${settings.cpuProfileDir}`);
  if (failed) throw new Error("some parts failed (see above and the report)");
}

/** Downloads and upload share one mxcd (SQLite) and one nginx serving its media store. */
async function benchTransfers(
  settings: Settings,
  tools: Tools,
  loadContext: LoadContext,
  maxUploadSize: string,
  cleanup: Cleanup,
  dir: string,
) {
  const dirs = { mxcd: join(dir, "mxcd"), nginx: join(dir, "nginx") };
  for (const folder of Object.values(dirs)) mkdirSync(folder);
  const nodeFlags = settings.cpuProfileDir
    ? ["--cpu-prof", `--cpu-prof-dir=${settings.cpuProfileDir}`]
    : [];
  console.error("starting mxcd and nginx");
  const mxcd = await startMxcd({ cli: CLI, dir: dirs.mxcd, maxUploadSize, nodeFlags }, cleanup);
  const nginx = await startNginx(
    { nginx: tools.nginx, dir: dirs.nginx, root: mxcd.mediaStore, workers: settings.nginxWorkers },
    cleanup,
  );
  const timed = async <T>(work: () => Promise<T>) => {
    const started = performance.now();
    return { value: await work(), seconds: (performance.now() - started) / 1000 };
  };
  const downloads = settings.only.has("downloads")
    ? await timed(() => benchDownloads({ ...loadContext, mxcd, nginx, dir }))
    : undefined;
  const upload = settings.only.has("upload")
    ? await timed(() => benchUpload({ tools, mxcd, dir, bytes: settings.uploadBytes }))
    : undefined;
  // Stopped here, not by the cleanup, so a CPU profile is written before the report.
  await mxcd.stop();
  return { downloads, upload };
}

/** Other work on the machine competes with the servers and wrk for the same cores. */
function warnIfBusy(): void {
  const [oneMinute = 0] = loadavg();
  if (oneMinute > 0.5) {
    console.error(
      `warning: load average ${oneMinute.toFixed(2)}: other processes are running; ` +
        "figures will be lower and noisier than on an idle machine",
    );
  }
}

await runMain(main);
