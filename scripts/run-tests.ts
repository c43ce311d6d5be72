/**
 * `npm test`: starts one throwaway PostgreSQL cluster, runs every
 * test/**\/*.test.ts file with node's test runner (each file makes its own
 * databases in that cluster), tears the cluster down and prints a summary.
 *
 * Without PostgreSQL the PostgreSQL suites are skipped with a loud message;
 * with CI=true (or MXCD_REQUIRE_POSTGRES=1) that is a failure instead, and so
 * is a run in which no PostgreSQL suite actually ran. The same holds for the
 * suites that drive nginx (test/deployment-nginx.test.ts,
 * test/attached-e2e.test.ts) and synadm (test/synadm.test.ts,
 * test/attached-e2e.test.ts) and ffmpeg (test/video-thumbnails.test.ts)
 * whenever those files are part of the run: each suite
 * leaves a marker (test/support/run-markers.ts), the summary prints
 * `<tool> suites run: N`, and under CI a count of 0 fails the run.
 *
 * The suite runs once per media store: the filesystem (the embedded default),
 * then S3 (every test server on its own s3rver, MXCD_TEST_MEDIA_STORE=s3).
 * MXCD_TEST_STORES=filesystem (or s3) runs one pass only, for quick local runs.
 * After a filesystem pass, the S3 pass runs only the files whose test servers
 * reached the store under test (test/support/run-markers.ts, `markStoreUsed`
 * through `watchStoreUse` and `watchStoreConfig`): the others do exactly the
 * same thing in both passes. Each pass prints its wall time and its slowest
 * files (scripts/file-timing-reporter.mjs).
 *
 * The test files run compiled: the runner first compiles src/ and test/
 * into dist/ (tsconfig.test.json, `tsc --noCheck`: emit only, `npm run
 * typecheck` checks the types) and runs dist/test/**\/*.test.js, which
 * saves each test process transpiling its module graph through tsx (README,
 * "Test suite run time"). MXCD_TEST_TSX=1 runs the .ts files through tsx
 * instead, as before. Either way the files are named by their test/ path.
 *
 * Usage: tsx scripts/run-tests.ts [test files...]
 */
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { availableParallelism, loadavg, tmpdir } from "node:os";
import { join, normalize, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { prepareDatabaseTemplates } from "../test/support/databases.js";
import {
  findPostgresBin,
  type PostgresCluster,
  startPostgresCluster,
} from "../test/support/postgres-cluster.js";
import { countSuitesRan, type MarkerKind, storeUsers } from "../test/support/run-markers.js";

const requirePostgres = process.env.CI === "true" || process.env.MXCD_REQUIRE_POSTGRES === "1";
const files =
  process.argv.length > 2
    ? process.argv.slice(2).map((file) => relative(process.cwd(), resolve(file)))
    : readdirSync("test", { recursive: true })
        .map(String)
        .filter((f) => f.endsWith(".test.ts"))
        .map((f) => join("test", f))
        .sort();

const scratch = mkdtempSync(join(tmpdir(), "mxcd-test-run-"));
const markers = join(scratch, "markers");
/** Suites that need a tool, by the files that hold them (checked when one of them runs). */
const TOOL_SUITES: readonly { kind: MarkerKind; files: readonly string[] }[] = [
  {
    kind: "nginx",
    files: [join("test", "deployment-nginx.test.ts"), join("test", "attached-e2e.test.ts")],
  },
  {
    kind: "synadm",
    files: [join("test", "synadm.test.ts"), join("test", "attached-e2e.test.ts")],
  },
  { kind: "ffmpeg", files: [join("test", "video-thumbnails.test.ts")] },
  {
    kind: "chromium",
    files: [
      join("test", "console-e2e.test.ts"),
      join("test", "console-a11y.test.ts"),
      join("test", "console-loading.test.ts"),
    ],
  },
];
const STORES = (process.env.MXCD_TEST_STORES ?? "filesystem,s3").split(",").map((s) => s.trim());
/** Test files run at once; MXCD_TEST_CONCURRENCY overrides (README, "Test suite run time"). */
const CONCURRENCY =
  Number(process.env.MXCD_TEST_CONCURRENCY) || Math.max(2, availableParallelism());
const STORE_PASS_ENGINES = process.env.MXCD_TEST_STORE_PASS_ENGINES ?? "sqlite";
/** Run the compiled tests (the default) or the .ts files through tsx (MXCD_TEST_TSX=1). */
const COMPILED = process.env.MXCD_TEST_TSX !== "1";
const COMPILED_INTO = "dist";

/** The file node runs for a test file: its compiled twin in dist/, or itself under tsx. */
function runnable(file: string): string {
  return COMPILED ? join(COMPILED_INTO, file.replace(/\.ts$/, ".js")) : file;
}
/** Test file by the absolute path of what node ran (markers and timings name that). */
const sourceOf = new Map(files.map((file) => [resolve(runnable(file)), file]));

/**
 * Compiles src/ and test/ into dist/ (tsconfig.test.json) without checking
 * types: emit only, ~10 s of CPU; `npm run typecheck` checks them. False
 * (and tsc's messages printed) when tsc could not emit.
 */
function compileTests(): boolean {
  const tsc = createRequire(import.meta.url).resolve("typescript/bin/tsc");
  const started = performance.now();
  const result = spawnSync(process.execPath, [tsc, "-p", "tsconfig.test.json", "--noCheck"], {
    stdio: "inherit",
  });
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  console.log(`test run: compiled src/ and test/ into ${COMPILED_INTO}/ in ${seconds} s`);
  return result.status === 0;
}

interface PassResult {
  readonly code: number;
  readonly tap: string;
}

async function main(): Promise<number> {
  if (COMPILED && !compileTests()) {
    console.log("FAIL: tsc could not compile the tests (MXCD_TEST_TSX=1 runs them through tsx)");
    return 1;
  }
  let cluster: PostgresCluster | undefined;
  const bin = findPostgresBin();
  if (bin) {
    cluster = await startPostgresCluster(bin);
    console.log(`test run: PostgreSQL cluster from ${bin} at ${cluster.adminUrl}`);
  } else {
    const banner = "!".repeat(72);
    console.log(
      `${banner}\n!!! PostgreSQL (initdb/postgres) not found: PostgreSQL suites are SKIPPED.`,
    );
    console.log(`!!! Install it (apt-get install postgresql) to run them.\n${banner}`);
    if (requirePostgres) return 1;
  }
  try {
    // Test servers copy these instead of migrating a database each (test/support/databases.ts).
    const templates = await prepareDatabaseTemplates(scratch, cluster?.adminUrl);
    const passes: PassResult[] = [];
    for (const [index, store] of STORES.entries()) {
      const passFiles = index === 0 ? files : filesUsingTheStore();
      console.log(
        `\n=== test pass: media store ${store} (${passFiles.length} of ${files.length} files) ===`,
      );
      if (passFiles.length === 0) {
        // Under CI an empty later pass means the marker broke, not that
        // nothing depends on the store: fail rather than lose the S3 pass.
        if (requirePostgres) {
          console.log(`FAIL: no test file used the media store; the ${store} pass would be empty`);
          passes.push({ code: 1, tap: "" });
        }
        continue;
      }
      const tapFile = join(scratch, `results-${store}.tap`);
      const started = performance.now();
      // A later pass tests the store, not the database: suites written for
      // both engines run on one (MXCD_TEST_STORE_PASS_ENGINES, default
      // sqlite); PostgreSQL ran each of them in the first pass.
      const engines = index === 0 ? undefined : STORE_PASS_ENGINES;
      const env = { ...templates, ...(engines ? { MXCD_TEST_ENGINES: engines } : {}) };
      const code = await runNodeTests(cluster?.adminUrl, store, tapFile, passFiles, env);
      printSlowestFiles(store, `${tapFile}.timings`, performance.now() - started);
      passes.push({ code, tap: readFileSync(tapFile, "utf8") });
    }
    return summarize(passes, cluster !== undefined);
  } finally {
    await cluster?.stop();
    rmSync(scratch, { recursive: true, force: true });
  }
}

/** The files of this run that left `markStoreUsed` in an earlier pass. */
function filesUsingTheStore(): string[] {
  const users = new Set(storeUsers(markers).map((file) => resolve(file)));
  return files.filter((file) => users.has(resolve(runnable(file))));
}

/**
 * The pass's wall time and its slowest files (scripts/file-timing-reporter.mjs),
 * each with the CPU time of its own process (scripts/file-cpu-usage.mjs): a
 * file whose CPU is far below its wall time waits (on timers, PostgreSQL,
 * child processes) and leaves a core idle at this concurrency.
 */
function printSlowestFiles(store: string, timingsFile: string, passMs: number): void {
  if (!existsSync(timingsFile)) return;
  const timings = jsonLines<{ file: string; ms: number }>(timingsFile).sort((a, b) => b.ms - a.ms);
  const cpu = new Map(
    jsonLines<{ file: string; cpuMs: number }>(`${timingsFile}.cpu`).map((c) => [
      resolve(c.file),
      c.cpuMs,
    ]),
  );
  const seconds = (ms: number | undefined) =>
    (ms === undefined ? "?" : (ms / 1000).toFixed(1)).padStart(7);
  const fileSum = timings.reduce((sum, t) => sum + t.ms, 0);
  const cpuSum = [...cpu.values()].reduce((sum, ms) => sum + ms, 0);
  console.log(
    `\n${store} pass: ${seconds(passMs).trim()} s wall, ${seconds(fileSum).trim()} s in files, ` +
      `${seconds(cpuSum).trim()} s CPU in test processes (concurrency ${CONCURRENCY}, ` +
      `load average ${loadavg()[0]?.toFixed(1)}); slowest (wall, CPU):`,
  );
  for (const t of timings.slice(0, SLOWEST_SHOWN)) {
    const file = sourceOf.get(resolve(t.file)) ?? relative(process.cwd(), t.file);
    console.log(`${seconds(t.ms)} s ${seconds(cpu.get(resolve(t.file)))} s  ${file}`);
  }
}
const SLOWEST_SHOWN = 25;

function jsonLines<T>(path: string): T[] {
  if (!existsSync(path)) return [];
  return readFileSync(path, "utf8")
    .split("\n")
    .filter((line) => line.trim() !== "")
    .map((line) => JSON.parse(line) as T);
}

function runNodeTests(
  postgresUrl: string | undefined,
  store: string,
  tapFile: string,
  passFiles: readonly string[],
  extraEnv: Readonly<Record<string, string>>,
): Promise<number> {
  const args = [
    "--import",
    fileURLToPath(new URL("file-cpu-usage.mjs", import.meta.url)),
    // Stack traces name the .ts lines (tsconfig.json's source maps).
    ...(COMPILED ? ["--enable-source-maps"] : ["--import", "tsx"]),
    "--test",
    `--test-concurrency=${CONCURRENCY}`,
    // A hung test fails by name instead of stalling the run.
    `--test-timeout=${process.env.MXCD_TEST_TIMEOUT_MS ?? 180_000}`,
    "--test-reporter=spec",
    "--test-reporter-destination=stdout",
    // TAP, and each file's duration in ${tapFile}.timings.
    `--test-reporter=${fileURLToPath(new URL("file-timing-reporter.mjs", import.meta.url))}`,
    `--test-reporter-destination=${tapFile}`,
    ...passFiles.map(runnable),
  ];
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    ...extraEnv,
    MXCD_TEST_MARKERS: markers,
    MXCD_TEST_MEDIA_STORE: store,
    MXCD_TEST_TIMINGS: `${tapFile}.timings`,
  };
  if (postgresUrl) env.MXCD_TEST_POSTGRES_URL = postgresUrl;
  else delete env.MXCD_TEST_POSTGRES_URL;
  return new Promise((resolve) => {
    const child = spawn(process.execPath, args, { stdio: "inherit", env });
    child.on("exit", (code, signal) => resolve(code ?? (signal ? 1 : 0)));
  });
}

function summarize(passes: readonly PassResult[], postgresStarted: boolean): number {
  const count = (name: string) =>
    passes.reduce(
      (sum, pass) => sum + Number(new RegExp(`^# ${name} (\\d+)$`, "m").exec(pass.tap)?.[1] ?? 0),
      0,
    );
  const postgresSuites = countSuitesRan(markers, "postgres");
  console.log(`\nmedia stores tested: ${STORES.join(", ")}`);
  console.log(`PostgreSQL databases used by tests: ${postgresSuites}`);
  let result = passes.some((p) => p.code !== 0) ? 1 : 0;
  if (requirePostgres && (!postgresStarted || postgresSuites === 0)) {
    console.log("FAIL: the PostgreSQL suites did not run (CI requires them)");
    result = 1;
  }
  const running = files.map(normalize);
  for (const { kind, files: suites } of TOOL_SUITES) {
    if (!suites.some((file) => running.includes(file))) continue;
    const ran = countSuitesRan(markers, kind);
    console.log(`${kind} suites run: ${ran}`);
    if (requirePostgres && ran === 0) {
      console.log(`FAIL: the ${kind} suites did not run (CI requires them)`);
      result = 1;
    }
  }
  const failed = count("fail") + count("cancelled");
  console.log(`tests: ${count("pass")} passed, ${failed} failed, ${count("skipped")} skipped`);
  return result;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
