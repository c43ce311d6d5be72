/**
 * `npm run bench:quota-totals`: what the upload quota's running totals
 * (migration 0019's triggers on `local_media_repository`) cost the writes
 * that pay them, quota or not (issue 17).
 *
 * Per engine (SQLite; PostgreSQL when its binaries are installed), one
 * migrated database, and three kinds of write, each timed in
 * `MXCD_BENCH_TOTALS_BLOCKS` (10) alternating blocks with the triggers on
 * and off (PostgreSQL: `ALTER TABLE … DISABLE TRIGGER USER`; SQLite: the
 * triggers dropped and created again; the totals are wrong while off, which
 * nothing here reads):
 * - `upload`: one counted row inserted in its own transaction, always by
 *   the same user (the same minute, hour and day buckets: the upsert always
 *   updates), 200 per block;
 * - `import`: one 500-row INSERT of 50 users' rows spread over a year (the
 *   Synapse importer's statement), per row;
 * - `delete`: one row deleted by key in its own transaction, per row.
 * Figures: CPU per row (this process + the PostgreSQL cluster), median over
 * the blocks, on and off, and the difference.
 *
 * Then, PostgreSQL only, the hot bucket: `MXCD_BENCH_TOTALS_WORKERS` (4)
 * connections each committing upload-like transactions as fast as they can
 * (upload-service.ts's: the quarantine feed's lock, the row, the
 * reservation's DELETE, the hash check, COMMIT) for 3 s per leg, by one
 * user (every transaction updates the same three bucket rows) or by one
 * user per worker, with the triggers on or off, and once without the feed
 * lock (what the bucket rows alone would serialise). Transactions per
 * second. Nothing here asserts a time.
 */
import { loadavg } from "node:os";
import { performance } from "node:perf_hooks";
import { sql } from "kysely";
import pg from "pg";
import type { DatabaseConfig } from "../src/config/config-schema.js";
import { createDatabase, type Database } from "../src/db/database.js";
import { runMigrations } from "../src/db/migrate.js";
import type { Cleanup } from "./support/cleanup.js";
import { cpuSeconds } from "./support/cpu-time.js";
import { type EngineFactory, standaloneEngines } from "./support/engines.js";
import { tempDir } from "./support/files.js";
import { isMainModule, runMain } from "./support/main.js";
import { markdownTable } from "./support/markdown.js";

const BLOCKS = Number(process.env.MXCD_BENCH_TOTALS_BLOCKS ?? 10);
const WORKERS = Number(process.env.MXCD_BENCH_TOTALS_WORKERS ?? 4);
const HOT_SECONDS = 3;
const DAY = 86_400_000;

let ids = 0;
const row = (userId: string, createdTs: number) => ({
  media_id: `b${++ids}`,
  media_type: "application/octet-stream",
  media_length: 1_048_576,
  created_ts: createdTs,
  user_id: userId,
  safe_from_quarantine: false,
  authenticated: true,
  sha256: "x",
  md5: "x",
  pdq_status: "none",
});

/** Turns migration 0019's triggers off and on again. */
async function triggerSwitch(database: Database) {
  const db = database.db;
  if (database.engine === "postgres") {
    return async (on: boolean) => {
      await sql
        .raw(`alter table local_media_repository ${on ? "enable" : "disable"} trigger user`)
        .execute(db);
    };
  }
  const { rows } = await sql<{ name: string; sql: string }>`
    select name, sql from sqlite_master
    where type = 'trigger' and tbl_name = 'local_media_repository'`.execute(db);
  let current = true;
  return async (on: boolean) => {
    if (on === current) return;
    current = on;
    for (const t of rows) {
      await sql.raw(on ? t.sql : `drop trigger ${t.name}`).execute(db);
    }
  };
}

/** CPU seconds of this process and, on PostgreSQL, its cluster. */
async function cpuReader(config: DatabaseConfig): Promise<() => number> {
  const own = () => {
    const used = process.cpuUsage();
    return (used.user + used.system) / 1e6;
  };
  if (config.engine !== "postgres") return own;
  const client = new pg.Client({ connectionString: config.url });
  await client.connect();
  const { rows } = await client.query<{ pid: number }>("select pg_backend_pid() as pid");
  const { readFileSync } = await import("node:fs");
  const status = readFileSync(`/proc/${rows[0]!.pid}/status`, "utf8");
  await client.end();
  const postmaster = Number(/^PPid:\s+(\d+)/m.exec(status)?.[1]);
  return () => own() + cpuSeconds(postmaster);
}

type Kind = "upload" | "import" | "delete";
interface KindResult {
  on: number;
  off: number;
}

async function writesPerRow(
  database: Database,
  cpu: () => number,
): Promise<Record<Kind, KindResult>> {
  const db = database.db;
  const toggle = await triggerSwitch(database);
  const deletable: string[] = [];
  const work: Record<Kind, () => Promise<number>> = {
    upload: async () => {
      for (let i = 0; i < 200; i++) {
        const values = row("@hot:bench.local", Date.now());
        deletable.push(values.media_id);
        await database.transaction((tx) =>
          tx.insertInto("local_media_repository").values(values).execute(),
        );
      }
      return 200;
    },
    import: async () => {
      const now = Date.now();
      const rows = Array.from({ length: 500 }, (_, i) =>
        row(`@import${i % 50}:bench.local`, now - Math.floor(Math.random() * 365 * DAY)),
      );
      await db.insertInto("local_media_repository").values(rows).execute();
      return 500;
    },
    delete: async () => {
      const batch = deletable.splice(0, 200);
      for (const mediaId of batch) {
        await database.transaction((tx) =>
          tx.deleteFrom("local_media_repository").where("media_id", "=", mediaId).execute(),
        );
      }
      return batch.length;
    },
  };
  const samples = { on: [] as Record<Kind, number>[], off: [] as Record<Kind, number>[] };
  // A warm-up block of each, then the blocks, on and off alternating in both orders.
  for (const kind of Object.keys(work) as Kind[]) await work[kind]();
  for (let block = 0; block < 2 * BLOCKS; block++) {
    const on = block % 4 === 0 || block % 4 === 3;
    await toggle(on);
    const sample = {} as Record<Kind, number>;
    for (const kind of Object.keys(work) as Kind[]) {
      const started = cpu();
      const n = await work[kind]();
      sample[kind] = ((cpu() - started) * 1000) / Math.max(n, 1);
    }
    samples[on ? "on" : "off"].push(sample);
  }
  await toggle(true);
  const median = (values: number[]) => [...values].sort((a, b) => a - b)[values.length >> 1]!;
  const result = {} as Record<Kind, KindResult>;
  for (const kind of ["upload", "import", "delete"] as const) {
    result[kind] = {
      on: median(samples.on.map((s) => s[kind])),
      off: median(samples.off.map((s) => s[kind])),
    };
  }
  return result;
}

interface HotLeg {
  name: string;
  perSecond: number;
}

/** PostgreSQL: upload-like transactions from WORKERS connections at once, per second. */
async function hotBucket(database: Database): Promise<HotLeg[]> {
  const toggle = await triggerSwitch(database);
  const legs = [
    { name: "one user, totals on", sameUser: true, on: true, feed: true },
    { name: "one user per worker, totals on", sameUser: false, on: true, feed: true },
    { name: "one user, totals off", sameUser: true, on: false, feed: true },
    { name: "one user, totals on, no feed lock", sameUser: true, on: true, feed: false },
    {
      name: "one user per worker, totals on, no feed lock",
      sameUser: false,
      on: true,
      feed: false,
    },
    { name: "one user, totals off, no feed lock", sameUser: true, on: false, feed: false },
  ];
  const results: HotLeg[] = [];
  for (const leg of [...legs, ...legs]) {
    await toggle(leg.on);
    let done = 0;
    const until = performance.now() + HOT_SECONDS * 1000;
    await Promise.all(
      Array.from({ length: WORKERS }, async (_, w) => {
        const userId = leg.sameUser ? "@hot:bench.local" : `@hot${w}:bench.local`;
        while (performance.now() < until) {
          await database.transaction(async (tx) => {
            if (leg.feed) {
              await sql`update quarantine_stream set position = position where id = 1`.execute(tx);
            }
            await tx.insertInto("local_media_repository").values(row(userId, Date.now())).execute();
            await tx
              .deleteFrom("media_upload_reservations")
              .where("reservation_id", "=", "none")
              .execute();
            await sql`select 1 from local_media_repository where sha256 = 'y' and quarantined_by is not null limit 1`.execute(
              tx,
            );
          });
          done++;
        }
      }),
    );
    const previous = results.find((r) => r.name === leg.name);
    if (previous) previous.perSecond = (previous.perSecond + done / HOT_SECONDS) / 2;
    else results.push({ name: leg.name, perSecond: done / HOT_SECONDS });
  }
  await toggle(true);
  return results;
}

async function benchEngine(engine: EngineFactory) {
  const config = await engine.database("totals");
  const database = createDatabase(config);
  try {
    await runMigrations(database);
    const cpu = await cpuReader(config);
    const load = [loadavg()[0]!, 0];
    const writes = await writesPerRow(database, cpu);
    const hot = database.engine === "postgres" ? await hotBucket(database) : [];
    load[1] = loadavg()[0]!;
    return { engine: engine.name, writes, hot, load };
  } finally {
    await database.close();
  }
}

if (isMainModule(import.meta.url)) {
  await runMain(async (cleanup: Cleanup) => {
    const dir = tempDir(cleanup, "mxcd-totals-bench-");
    const results = [];
    for (const engine of await standaloneEngines(cleanup, dir))
      results.push(await benchEngine(engine));
    const f = (v: number) => v.toFixed(3);
    const lines = [
      `CPU ms per row (this process + PostgreSQL), median of ${BLOCKS} blocks each, totals' triggers on / off / difference:`,
      "",
      ...markdownTable({
        header: [
          "engine",
          "upload (1 row, own transaction)",
          "import (500-row INSERT)",
          "delete (1 row, own transaction)",
          "load average",
        ],
        numeric: [],
        rows: results.map((r) => [
          r.engine,
          ...(["upload", "import", "delete"] as const).map(
            (k) =>
              `${f(r.writes[k].on)} / ${f(r.writes[k].off)} / ${r.writes[k].on - r.writes[k].off >= 0 ? "+" : ""}${f(r.writes[k].on - r.writes[k].off)}`,
          ),
          `${r.load[0]!.toFixed(1)} → ${r.load[1]!.toFixed(1)}`,
        ]),
      }),
    ];
    for (const r of results.filter((x) => x.hot.length > 0)) {
      lines.push(
        "",
        `${r.engine}: ${WORKERS} workers, upload-like transactions per second (mean of 2 × ${HOT_SECONDS} s):`,
        "",
      );
      lines.push(
        ...markdownTable({
          header: ["leg", "transactions/s"],
          numeric: [1],
          rows: r.hot.map((h) => [h.name, h.perSecond.toFixed(0)]),
        }),
      );
    }
    console.log(lines.join("\n"));
  });
}
