/**
 * `npm run bench`: mxcd against the physical limits of this machine, in one
 * run on loopback (DESIGN.md, "Performance principles"):
 *
 * 1. downloads of 4 KiB, 1 MiB and 64 MiB files, mxcd versus nginx serving
 *    the same files, under the same wrk load;
 * 2. a 1 GiB streamed upload versus sha256sum of the same file;
 * 3. the server's RSS during that upload.
 *
 * Prints machine, settings and a results table, and writes them to
 * bench/RESULTS.md. Environment knobs are listed in bench/README.md.
 * Everything started or created here is stopped and removed on exit,
 * failure or Ctrl-C.
 */
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { loadavg } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { benchDownloads } from "./download-bench.js";
import { renderReport } from "./report.js";
import { Cleanup, describeError } from "./support/cleanup.js";
import { tempDir } from "./support/files.js";
import { describeMachine } from "./support/machine.js";
import { startMxcd } from "./support/mxcd-server.js";
import { startNginx } from "./support/nginx-server.js";
import { findTools, MissingToolsError } from "./support/tools.js";
import { writeWrkScript } from "./support/wrk.js";
import { benchUpload } from "./upload-bench.js";

const REPO = fileURLToPath(new URL("..", import.meta.url));
const CLI = join(REPO, "dist", "src", "cli", "main.js");

/** What the environment may change, with the values as defaults. */
interface Settings {
  readonly seconds: number;
  readonly warmupSeconds: number;
  readonly uploadBytes: number;
  readonly nginxWorkers: string;
  readonly cpuProfileDir: string | undefined;
  readonly resultsPath: string;
}

function readSettings(env: NodeJS.ProcessEnv): Settings {
  const number = (name: string, fallback: number) => {
    const value = Number(env[name] ?? fallback);
    if (!Number.isFinite(value) || value < 0) throw new Error(`${name} must be a number >= 0`);
    return value;
  };
  return {
    seconds: Math.max(1, Math.round(number("MXCD_BENCH_DURATION", 10))),
    warmupSeconds: Math.round(number("MXCD_BENCH_WARMUP", 2)),
    uploadBytes: Math.round(number("MXCD_BENCH_UPLOAD_MIB", 1024) * 1024 ** 2),
    nginxWorkers: env.MXCD_BENCH_NGINX_WORKERS ?? "1",
    cpuProfileDir: env.MXCD_BENCH_CPU_PROF || undefined,
    resultsPath: env.MXCD_BENCH_RESULTS ?? join(REPO, "bench", "RESULTS.md"),
  };
}

/** Human-readable description of how this run measured, for the report. */
function describeSettings(settings: Settings, load: string, maxUploadSize: string): string[] {
  const mib = settings.uploadBytes / 1024 ** 2;
  return [
    `Load: \`${load}\` per server and size, after an untimed ${settings.warmupSeconds} s warm-up run; everything on 127.0.0.1.`,
    "mxcd: one process (`node dist/src/cli/main.js serve`), SQLite, filesystem media store, `log_level: warn`; downloads use the authenticated `GET /_matrix/client/v1/media/download/...` with a Bearer token.",
    `nginx: \`worker_processes ${settings.nginxWorkers}\`, \`sendfile on\`, \`tcp_nopush on\`, \`access_log off\`, serving the media store folder itself.`,
    `Upload: ${mib} MiB of random data, \`POST /_matrix/media/v3/upload\` streamed by \`curl -T\` (with Content-Length), \`max_upload_size: ${maxUploadSize}\`; \`sha256sum\` timed after one untimed run, so both read the file from the page cache.`,
    "RSS: VmRSS of the mxcd process every 50 ms; baseline = median over the 1 s before the upload, peak = largest sample until the upload's response.",
  ];
}

async function main(cleanup: Cleanup): Promise<void> {
  const settings = readSettings(process.env);
  const tools = findTools();
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run build\` first`);
  const machine = await describeMachine(tools);
  warnIfBusy();
  const root = tempDir(cleanup, "mxcd-bench-");
  const dirs = { mxcd: join(root, "mxcd"), nginx: join(root, "nginx"), files: root };
  for (const dir of [dirs.mxcd, dirs.nginx]) mkdirSync(dir);

  const maxUploadSize = settings.uploadBytes > 2 * 1024 ** 3 ? String(settings.uploadBytes) : "2G";
  const nodeFlags = settings.cpuProfileDir
    ? ["--cpu-prof", `--cpu-prof-dir=${settings.cpuProfileDir}`]
    : [];
  console.error("starting mxcd and nginx");
  const mxcd = await startMxcd({ cli: CLI, dir: dirs.mxcd, maxUploadSize, nodeFlags }, cleanup);
  const nginx = await startNginx(
    { nginx: tools.nginx, dir: dirs.nginx, root: mxcd.mediaStore, workers: settings.nginxWorkers },
    cleanup,
  );

  const load = { threads: 2, connections: 32, seconds: settings.seconds };
  const downloads = await benchDownloads({
    tools,
    mxcd,
    nginx,
    dir: dirs.files,
    wrkScript: writeWrkScript(root),
    load,
    warmupSeconds: settings.warmupSeconds,
  });
  const upload = await benchUpload({ tools, mxcd, dir: dirs.files, bytes: settings.uploadBytes });
  await mxcd.stop();

  const wrkLine = `wrk -t ${load.threads} -c ${load.connections} -d ${load.seconds}s`;
  const report = renderReport({
    date: new Date(),
    machine,
    settings: describeSettings(settings, wrkLine, maxUploadSize),
    downloads,
    upload,
  });
  writeFileSync(settings.resultsPath, report);
  console.log(report);
  console.error(`written to ${settings.resultsPath}`);
  if (settings.cpuProfileDir) console.error(`mxcd CPU profile in ${settings.cpuProfileDir}`);
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

const cleanup = new Cleanup();
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    console.error(`\n${signal}: stopping servers and removing temp files`);
    void cleanup.run().finally(() => process.exit(130));
  });
}
try {
  await main(cleanup);
} catch (error) {
  const missing = error instanceof MissingToolsError;
  console.error(missing ? error.message : `benchmark failed: ${describeError(error)}`);
  if (!missing && error instanceof Error && error.stack) console.error(error.stack);
  process.exitCode = missing ? 2 : 1;
} finally {
  await cleanup.run();
}
