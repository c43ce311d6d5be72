/**
 * Quarantine feed benchmark: page latency and server start-up time with
 * 10,000 and with 10,000,000 feed records, on SQLite and (when PostgreSQL's
 * binaries are installed) on a throwaway PostgreSQL cluster. Both should be
 * the same within noise: a page is a primary-key range scan with a fixed
 * limit, and start-up reads nothing from the feed.
 *
 * Run on its own: npx tsx bench/quarantine-feed-bench.ts   (`npm run bench` runs it too)
 * MXCD_BENCH_FEED_SIZES=10000,1000000 changes the sizes (default 10000,10000000).
 */
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { sql } from "kysely";
import { createApp } from "../src/app.js";
import type { DatabaseConfig } from "../src/config/config-schema.js";
import { validateConfig } from "../src/config/load-config.js";
import { createDatabase } from "../src/db/database.js";
import { runMigrations } from "../src/db/migrate.js";
import { createLogger } from "../src/logging/logger.js";
import type { Cleanup } from "./support/cleanup.js";
import { type EngineFactory, standaloneEngines } from "./support/engines.js";
import { tempDir } from "./support/files.js";
import { type Latency, sampleLatency } from "./support/latency.js";
import { isMainModule, runMain } from "./support/main.js";
import { count, markdownTable, type Table, times } from "./support/markdown.js";

/** Random pages timed per size and engine. */
const PAGES = 200;

export interface FeedBenchOptions {
  /** Feed sizes, smallest first. */
  readonly sizes: readonly number[];
  readonly engines: readonly EngineFactory[];
  /** A folder for the signing keys. */
  readonly dir: string;
}

export interface FeedResult {
  readonly engine: string;
  readonly records: number;
  readonly fillSeconds: number;
  readonly page: Latency;
  /** Milliseconds from createApp to listening. */
  readonly startupMs: number;
}

/** The default sizes, or MXCD_BENCH_FEED_SIZES. */
export function feedSizesFromEnv(env: NodeJS.ProcessEnv): number[] {
  const sizes = (env.MXCD_BENCH_FEED_SIZES ?? "10000,10000000").split(",").map(Number);
  if (sizes.some((n) => !Number.isInteger(n) || n < 1)) {
    throw new Error("MXCD_BENCH_FEED_SIZES must be a comma-separated list of whole numbers >= 1");
  }
  return sizes;
}

/** For each size and engine: a fresh database filled with that many records, then measured. */
export async function benchQuarantineFeed(
  options: FeedBenchOptions,
  cleanup: Cleanup,
): Promise<FeedResult[]> {
  const results: FeedResult[] = [];
  for (const records of options.sizes) {
    for (const engine of options.engines) {
      const database = await engine.database(`feed_${records}`);
      const started = performance.now();
      await fill(database, records);
      const fillSeconds = (performance.now() - started) / 1000;
      console.error(
        `feed: ${engine.name}: filled ${count(records)} records in ${fillSeconds.toFixed(1)} s`,
      );
      const keyPath = join(options.dir, `feed-${results.length}.key`);
      const measured = await measure(database, records, keyPath, cleanup);
      results.push({ engine: engine.name, records, fillSeconds, ...measured });
    }
  }
  return results;
}

/** The results as a Markdown table, with each engine's page median relative to its smallest size. */
export function feedTable(results: readonly FeedResult[]): Table {
  const smallest = new Map<string, FeedResult>();
  for (const r of results) {
    const known = smallest.get(r.engine);
    if (!known || r.records < known.records) smallest.set(r.engine, r);
  }
  return {
    header: [
      "engine",
      "feed records",
      "page median (ms)",
      "page p95 (ms)",
      "start-up (ms)",
      "median ÷ smallest size's",
    ],
    numeric: [1, 2, 3, 4, 5],
    rows: results.map((r) => [
      r.engine,
      count(r.records),
      r.page.median.toFixed(2),
      r.page.p95.toFixed(2),
      r.startupMs.toFixed(0),
      times(r.page.median / smallest.get(r.engine)!.page.median),
    ]),
  };
}

/** Fills the feed with `records` records straight in SQL (set-based, fast). */
async function fill(config: DatabaseConfig, records: number): Promise<void> {
  const database = createDatabase(config);
  try {
    await runMigrations(database);
    const db = database.db;
    const batch = 1_000_000;
    for (let start = 2; start < records + 2; start += batch) {
      const end = Math.min(start + batch, records + 2) - 1;
      const ids =
        config.engine === "postgres"
          ? sql`select generate_series(${start}::bigint, ${end}::bigint) as n`
          : sql`with recursive s(n) as (select cast(${start} as integer) union all select n + 1 from s where n < ${end}) select n from s`;
      const flag = config.engine === "postgres" ? sql`(n % 2 = 0)` : sql`n % 2`;
      await sql`
        insert into quarantined_media_changes (stream_id, origin, media_id, quarantined, sha256, quarantined_by, ts)
        select n, null, 'media' || n, ${flag}, null, 'bench', 0 from (${ids}) as ids`.execute(db);
    }
    await db
      .updateTable("quarantine_stream")
      .set({ position: records + 1 })
      .where("id", "=", 1)
      .execute();
    if (config.engine === "postgres") await sql`analyze quarantined_media_changes`.execute(db);
  } finally {
    await database.close();
  }
}

/** Start-up time of a server over `database`, and the latency of random pages. */
async function measure(
  database: DatabaseConfig,
  records: number,
  signingKeyPath: string,
  cleanup: Cleanup,
) {
  const config = validateConfig({
    server_name: "bench.local",
    listen: { host: "127.0.0.1", port: 0 },
    database,
    media_store: { engine: "memory" },
    log_level: "silent",
    signing_key_path: signingKeyPath,
  });
  const started = performance.now();
  const app = createApp(config, createLogger("silent"));
  cleanup.add("stop the feed bench server", () => app.stop());
  const base = await app.start();
  const startupMs = performance.now() - started;
  const adminId = await app.accounts.register({
    localpart: `admin${records}`,
    password: "x",
    admin: true,
  });
  const { accessToken } = await app.accounts.issueToken(adminId, null);
  const page = await sampleLatency(PAGES, async () => {
    const from = Math.floor(Math.random() * records);
    const res = await fetch(`${base}/_synapse/admin/v1/media/quarantine_changes?from=${from}`, {
      headers: { authorization: `Bearer ${accessToken}` },
    });
    if (res.status !== 200) throw new Error(`feed page: ${res.status} ${await res.text()}`);
    await res.json();
  });
  await app.stop();
  return { page, startupMs };
}

if (isMainModule(import.meta.url)) {
  await runMain(async (cleanup) => {
    const dir = tempDir(cleanup, "mxcd-feed-bench-");
    const results = await benchQuarantineFeed(
      {
        sizes: feedSizesFromEnv(process.env),
        engines: await standaloneEngines(cleanup, dir),
        dir,
      },
      cleanup,
    );
    console.log(markdownTable(feedTable(results)).join("\n"));
  });
}
