/**
 * Quarantine feed benchmark: page latency and server start-up time with
 * 10,000 and with 10,000,000 feed records, on SQLite and (when PostgreSQL's
 * binaries are installed) on a throwaway PostgreSQL cluster. Both should be
 * the same within noise: a page is a primary-key range scan with a fixed
 * limit, and start-up reads nothing from the feed.
 *
 * Run: npx tsx bench/quarantine-feed-bench.ts   (MXCD_BENCH_FEED_SIZES=10000,1000000 to change sizes)
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { sql } from "kysely";
import pg from "pg";
import { createApp } from "../src/app.js";
import type { DatabaseConfig } from "../src/config/config-schema.js";
import { validateConfig } from "../src/config/load-config.js";
import { createDatabase } from "../src/db/database.js";
import { runMigrations } from "../src/db/migrate.js";
import { createLogger } from "../src/logging/logger.js";
import { findPostgresBin, startPostgresCluster } from "../test/support/postgres-cluster.js";

const SIZES = (process.env.MXCD_BENCH_FEED_SIZES ?? "10000,10000000").split(",").map(Number);
const PAGES = 200;

/** Fills the feed with `count` records straight in SQL (set-based, fast). */
async function fill(config: DatabaseConfig, count: number): Promise<void> {
  const database = createDatabase(config);
  await runMigrations(database);
  const db = database.db;
  const batch = 1_000_000;
  for (let start = 2; start < count + 2; start += batch) {
    const end = Math.min(start + batch, count + 2) - 1;
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
    .set({ position: count + 1 })
    .where("id", "=", 1)
    .execute();
  if (config.engine === "postgres") await sql`analyze quarantined_media_changes`.execute(db);
  await database.close();
}

/** Start-up time of a server over `database`, and the median/p95 latency of random pages. */
async function measure(database: DatabaseConfig, count: number) {
  const config = validateConfig({
    server_name: "bench.local",
    listen: { host: "127.0.0.1", port: 0 },
    database,
    media_store: { engine: "memory" },
    log_level: "silent",
  });
  const t0 = performance.now();
  const app = createApp(config, createLogger("silent"));
  const base = await app.start();
  const startup = performance.now() - t0;
  const adminId = await app.accounts.register({
    localpart: `admin${count}`,
    password: "x",
    admin: true,
  });
  const { accessToken } = await app.accounts.issueToken(adminId, null);
  const times: number[] = [];
  for (let i = 0; i < PAGES; i++) {
    const from = Math.floor(Math.random() * count);
    const t = performance.now();
    const res = await fetch(`${base}/_synapse/admin/v1/media/quarantine_changes?from=${from}`, {
      headers: { authorization: `Bearer ${accessToken}` },
    });
    await res.json();
    times.push(performance.now() - t);
  }
  await app.stop();
  times.sort((a, b) => a - b);
  return { startup, median: times[PAGES >> 1]!, p95: times[Math.floor(PAGES * 0.95)]! };
}

async function main() {
  const rows: string[] = [];
  const dir = mkdtempSync(join(tmpdir(), "mxcd-feed-bench-"));
  const bin = findPostgresBin();
  const cluster = bin ? await startPostgresCluster(bin) : undefined;
  try {
    for (const count of SIZES) {
      const engines: [string, DatabaseConfig][] = [
        ["SQLite", { engine: "sqlite", path: join(dir, `feed-${count}.sqlite`) }],
      ];
      if (cluster) {
        const admin = new pg.Client({ connectionString: cluster.adminUrl });
        await admin.connect();
        await admin.query(`create database feed_${count}`);
        await admin.end();
        const url = new URL(cluster.adminUrl);
        url.pathname = `/feed_${count}`;
        engines.push([
          "PostgreSQL",
          { engine: "postgres", url: url.toString(), max_connections: 5 },
        ]);
      }
      for (const [name, config] of engines) {
        const t = performance.now();
        await fill(config, count);
        console.error(
          `${name}: filled ${count.toLocaleString("en")} records in ${((performance.now() - t) / 1000).toFixed(1)} s`,
        );
        const m = await measure(config, count);
        rows.push(
          `| ${name} | ${count.toLocaleString("en")} | ${m.median.toFixed(2)} | ${m.p95.toFixed(2)} | ${m.startup.toFixed(0)} |`,
        );
      }
    }
  } finally {
    await cluster?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  console.log("| engine | feed records | page median (ms) | page p95 (ms) | start-up (ms) |");
  console.log("| --- | ---: | ---: | ---: | ---: |");
  for (const row of rows) console.log(row);
}

await main();
