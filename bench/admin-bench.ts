/**
 * Media admin API at scale: 1,000,000 local media rows (MXCD_BENCH_MEDIA_ROWS),
 * on SQLite and, when PostgreSQL's binaries are installed, on a throwaway
 * PostgreSQL cluster. Measures, over HTTP against an in-process server:
 * query one media by id (random ids), one page of a user's media (10,000 of
 * theirs among the million, newest first), and quarantining a room that
 * references 10,000 media.
 *
 * Run on its own: npx tsx bench/admin-bench.ts   (`npm run bench` runs it too)
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
import { count, markdownTable, type Table } from "./support/markdown.js";

/** Media of the one heavy user, and media referenced by the quarantined room. */
const USER_MEDIA = 10_000;
const ROOM_MEDIA = 10_000;
/** Timed calls per query (after WARMUP untimed ones). */
const SAMPLES = 100;
const WARMUP = 5;

export interface AdminBenchOptions {
  /** Local media rows in the table. */
  readonly rows: number;
  readonly engines: readonly EngineFactory[];
  /** A folder for the signing keys. */
  readonly dir: string;
}

export interface AdminResult {
  readonly engine: string;
  readonly rows: number;
  readonly fillSeconds: number;
  readonly byId: Latency;
  readonly userPage: Latency;
  readonly quarantineSeconds: number;
  readonly quarantined: number;
}

/** Fills a fresh database per engine, then measures the three operations on it. */
export async function benchAdmin(
  options: AdminBenchOptions,
  cleanup: Cleanup,
): Promise<AdminResult[]> {
  const results: AdminResult[] = [];
  for (const engine of options.engines) {
    const database = await engine.database("admin_bench");
    const started = performance.now();
    await fill(database, options.rows);
    const fillSeconds = (performance.now() - started) / 1000;
    console.error(
      `admin: ${engine.name}: filled ${count(options.rows)} media rows in ${fillSeconds.toFixed(1)} s`,
    );
    const keyPath = join(options.dir, `admin-${results.length}.key`);
    const measured = await measure(database, options.rows, keyPath, cleanup);
    results.push({ engine: engine.name, rows: options.rows, fillSeconds, ...measured });
  }
  return results;
}

/** The results as a Markdown table. */
export function adminTable(results: readonly AdminResult[]): Table {
  const latency = (l: Latency) => `${l.median.toFixed(2)} ms median, ${l.p95.toFixed(2)} ms p95`;
  return {
    header: ["engine", "media rows", "operation", "time"],
    numeric: [1, 3],
    rows: results.flatMap((r) => [
      [r.engine, count(r.rows), "query one media by id", latency(r.byId)],
      [
        r.engine,
        count(r.rows),
        `one page (100) of a user's ${count(USER_MEDIA)} media`,
        latency(r.userPage),
      ],
      [
        r.engine,
        count(r.rows),
        `quarantine a room of ${count(ROOM_MEDIA)} media (${count(r.quarantined)} transitions)`,
        `${r.quarantineSeconds.toFixed(2)} s`,
      ],
    ]),
  };
}

/** Numbers 1..n as a set-returning SQL source for either engine. */
function series(engine: string, n: number) {
  return engine === "postgres"
    ? sql`select generate_series(1, ${n}::integer) as n`
    : sql`with recursive s(n) as (select 1 union all select n + 1 from s where n < ${n}) select n from s`;
}

/** `rows` media: user `@u<n % 100>` owns most, `@heavy` owns USER_MEDIA, a room references ROOM_MEDIA. */
async function fill(config: DatabaseConfig, rows: number): Promise<void> {
  const database = createDatabase(config);
  try {
    await runMigrations(database);
    const db = database.db;
    const engine = config.engine;
    const owner = sql`case when n <= ${USER_MEDIA} then '@heavy:bench.local' else '@u' || (n % 100) || ':bench.local' end`;
    await sql`
      insert into local_media_repository (media_id, media_type, media_length, created_ts, upload_name, user_id, safe_from_quarantine, authenticated, sha256)
      select 'media' || n, 'image/png', 1000 + n, 1700000000000 + n, null, ${owner}, ${false}, ${true},
             ${engine === "postgres" ? sql`md5(n::text) || md5((n + 1)::text)` : sql`printf('%064x', n)`}
      from (${series(engine, rows)}) as ids`.execute(db);
    await sql`
      insert into media_references (kind, media_origin, media_id, room_id, event_id, stream_ordering, user_id)
      select 'url', 'bench.local', 'media' || (n * 37 % cast(${rows} as integer) + 1), '!room:bench.local', '$e' || n, n, null
      from (${series(engine, ROOM_MEDIA)}) as ids`.execute(db);
    if (engine === "postgres") await sql`analyze`.execute(db);
  } finally {
    await database.close();
  }
}

async function measure(
  database: DatabaseConfig,
  rows: number,
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
  const app = createApp(config, createLogger("silent"));
  cleanup.add("stop the admin bench server", () => app.stop());
  const base = await app.start();
  const adminId = await app.accounts.register({
    localpart: "benchadmin",
    password: "x",
    admin: true,
  });
  await app.accounts.register({ localpart: "heavy", password: "x", admin: false });
  const { accessToken } = await app.accounts.issueToken(adminId, null);
  const call = async (path: string, method = "GET") => {
    const res = await fetch(`${base}/_synapse/admin/v1${path}`, {
      method,
      headers: { authorization: `Bearer ${accessToken}` },
    });
    if (res.status !== 200) throw new Error(`${path}: ${res.status} ${await res.text()}`);
    return res.json();
  };
  const byId = await sampleLatency(
    SAMPLES,
    () => call(`/media/bench.local/media${1 + Math.floor(Math.random() * rows)}`),
    WARMUP,
  );
  const userPage = await sampleLatency(
    SAMPLES,
    () => call(`/users/${encodeURIComponent("@heavy:bench.local")}/media?limit=100`),
    WARMUP,
  );
  const started = performance.now();
  const room = encodeURIComponent("!room:bench.local");
  const result = (await call(`/room/${room}/media/quarantine`, "POST")) as {
    num_quarantined: number;
  };
  const quarantineSeconds = (performance.now() - started) / 1000;
  await app.stop();
  return { byId, userPage, quarantineSeconds, quarantined: result.num_quarantined };
}

if (isMainModule(import.meta.url)) {
  await runMain(async (cleanup) => {
    const dir = tempDir(cleanup, "mxcd-admin-bench-");
    const results = await benchAdmin(
      {
        rows: Number(process.env.MXCD_BENCH_MEDIA_ROWS ?? 1_000_000),
        engines: await standaloneEngines(cleanup, dir),
        dir,
      },
      cleanup,
    );
    console.log(markdownTable(adminTable(results)).join("\n"));
  });
}
