/**
 * Media admin API at scale: 1,000,000 local media rows (MXCD_BENCH_MEDIA_ROWS),
 * on SQLite and, when PostgreSQL's binaries are installed, on a throwaway
 * PostgreSQL cluster. Measures, over HTTP: query one media by id, one page
 * of a user's media (10,000 of theirs among the million, newest first), and
 * quarantining a room that references 10,000 media.
 *
 * Run: npx tsx bench/admin-bench.ts
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

const ROWS = Number(process.env.MXCD_BENCH_MEDIA_ROWS ?? 1_000_000);
const USER_MEDIA = 10_000;
const ROOM_MEDIA = 10_000;
const SAMPLES = 100;

/** Numbers 1..n as a set-returning SQL source for either engine. */
function series(engine: string, n: number) {
  return engine === "postgres"
    ? sql`select generate_series(1, ${n}::integer) as n`
    : sql`with recursive s(n) as (select 1 union all select n + 1 from s where n < ${n}) select n from s`;
}

/** ROWS media: user `@u<n % 100>` owns most, `@heavy` owns USER_MEDIA, a room references ROOM_MEDIA. */
async function fill(config: DatabaseConfig): Promise<void> {
  const database = createDatabase(config);
  await runMigrations(database);
  const db = database.db;
  const engine = config.engine;
  const owner =
    engine === "postgres"
      ? sql`case when n <= ${USER_MEDIA} then '@heavy:bench.local' else '@u' || (n % 100) || ':bench.local' end`
      : sql`case when n <= ${USER_MEDIA} then '@heavy:bench.local' else '@u' || (n % 100) || ':bench.local' end`;
  await sql`
    insert into local_media_repository (media_id, media_type, media_length, created_ts, upload_name, user_id, safe_from_quarantine, authenticated, sha256)
    select 'media' || n, 'image/png', 1000 + n, 1700000000000 + n, null, ${owner}, ${false}, ${true},
           ${engine === "postgres" ? sql`md5(n::text) || md5((n + 1)::text)` : sql`printf('%064x', n)`}
    from (${series(engine, ROWS)}) as ids`.execute(db);
  await sql`
    insert into media_references (kind, media_origin, media_id, room_id, event_id, stream_ordering, user_id)
    select 'url', 'bench.local', 'media' || (n * 37 % cast(${ROWS} as integer) + 1), '!room:bench.local', '$e' || n, n, null
    from (${series(engine, ROOM_MEDIA)}) as ids`.execute(db);
  if (engine === "postgres") await sql`analyze`.execute(db);
  await database.close();
}

async function time(
  samples: number,
  run: () => Promise<void>,
): Promise<{ median: number; p95: number }> {
  const times: number[] = [];
  for (let i = 0; i < samples; i++) {
    const t = performance.now();
    await run();
    times.push(performance.now() - t);
  }
  times.sort((a, b) => a - b);
  return { median: times[samples >> 1]!, p95: times[Math.floor(samples * 0.95)]! };
}

async function measure(name: string, database: DatabaseConfig): Promise<string[]> {
  const config = validateConfig({
    server_name: "bench.local",
    listen: { host: "127.0.0.1", port: 0 },
    database,
    media_store: { engine: "memory" },
    log_level: "silent",
    signing_key_path: join(mkdtempSync(join(tmpdir(), "mxcd-key-")), "signing.key"),
  });
  const app = createApp(config, createLogger("silent"));
  const base = await app.start();
  const adminId = await app.accounts.register({
    localpart: "benchadmin",
    password: "x",
    admin: true,
  });
  await app.accounts.register({ localpart: "heavy", password: "x", admin: false });
  const { accessToken } = await app.accounts.issueToken(adminId, null);
  const get = async (path: string, method = "GET") => {
    const res = await fetch(`${base}/_synapse/admin/v1${path}`, {
      method,
      headers: { authorization: `Bearer ${accessToken}` },
    });
    if (res.status !== 200) throw new Error(`${path}: ${res.status} ${await res.text()}`);
    return res.json();
  };
  const byId = await time(SAMPLES, async () => {
    await get(`/media/bench.local/media${1 + Math.floor(Math.random() * ROWS)}`);
  });
  const page = await time(SAMPLES, async () => {
    await get(`/users/${encodeURIComponent("@heavy:bench.local")}/media?limit=100`);
  });
  const t = performance.now();
  const result = (await get(
    `/room/${encodeURIComponent("!room:bench.local")}/media/quarantine`,
    "POST",
  )) as {
    num_quarantined: number;
  };
  const quarantine = performance.now() - t;
  await app.stop();
  const rows = ROWS.toLocaleString("en");
  return [
    `| ${name} | ${rows} | query one media by id | ${byId.median.toFixed(2)} ms median, ${byId.p95.toFixed(2)} ms p95 |`,
    `| ${name} | ${rows} | one page (100) of a user's ${USER_MEDIA.toLocaleString("en")} media | ${page.median.toFixed(2)} ms median, ${page.p95.toFixed(2)} ms p95 |`,
    `| ${name} | ${rows} | quarantine a room of ${ROOM_MEDIA.toLocaleString("en")} media (${result.num_quarantined} transitions) | ${(quarantine / 1000).toFixed(2)} s |`,
  ];
}

async function main() {
  const dir = mkdtempSync(join(tmpdir(), "mxcd-admin-bench-"));
  const bin = findPostgresBin();
  const cluster = bin ? await startPostgresCluster(bin) : undefined;
  const rows: string[] = [];
  try {
    const engines: [string, DatabaseConfig][] = [
      ["SQLite", { engine: "sqlite", path: join(dir, "admin.sqlite") }],
    ];
    if (cluster) {
      const admin = new pg.Client({ connectionString: cluster.adminUrl });
      await admin.connect();
      await admin.query("create database admin_bench");
      await admin.end();
      const url = new URL(cluster.adminUrl);
      url.pathname = "/admin_bench";
      engines.push(["PostgreSQL", { engine: "postgres", url: url.toString(), max_connections: 5 }]);
    }
    for (const [name, config] of engines) {
      const t = performance.now();
      await fill(config);
      console.error(
        `${name}: filled ${ROWS.toLocaleString("en")} media rows in ${((performance.now() - t) / 1000).toFixed(1)} s`,
      );
      rows.push(...(await measure(name, config)));
    }
  } finally {
    await cluster?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  console.log("| engine | media rows | operation | time |");
  console.log("| --- | ---: | --- | ---: |");
  for (const row of rows) console.log(row);
}

await main();
