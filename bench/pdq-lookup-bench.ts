/**
 * PDQ look-up at scale (issue 16, "mxcd's own admin API"), in one process,
 * nothing asserted. For each size N (default 10,000 and 1,000,000): N local
 * media rows with a PDQ hash and their PDQ hash log rows in SQLite, written
 * in bulk; then
 *
 * - PdqSearchService: the background build (`warmUp`) timed, with the worst
 *   event-loop stall during it (perf_hooks.monitorEventLoopDelay) and a query
 *   sent as the build starts (it waits for the build); the index's memory
 *   (heap + array buffers after GC); then findSimilar at max_distance 31
 *   (limit 100), p50/p99/max;
 * - the app over loopback HTTP with an admin token: start-up to "listening",
 *   the background build it starts (GET /health answered meanwhile: the
 *   slowest answer and the worst event-loop stall), then
 *   `GET /_mxcd/admin/v1/media/lookup?pdq=…` (p50/p99/max, and the garbage
 *   collector's pauses during them) and `…?sha256=…` pages of 100 rows.
 *
 * Hashes: 90 % random, 10 % in clusters of 10 near-duplicates (distances
 * 0–20). PDQ queries: half random (nothing near), half a stored hash with 8
 * bits flipped. One row in 100 carries one of ten shared SHA-256 values
 * (N/1000 rows each), for the exact look-up's full pages.
 *
 * Run: `npm run bench:pdq-lookup` (PDQ_LOOKUP_HASHES, a comma list, default
 * "10000,1000000"; PDQ_LOOKUP_QUERIES, default 400; PDQ_LOOKUP_KEEP_DB=1
 * keeps the seeded databases in the temp directory and reuses them: the
 * bulk insert of 10⁶ rows takes minutes on a busy machine). The load
 * average is printed: the machine is shared.
 */
import { existsSync, mkdtempSync, renameSync, rmSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import {
  type IntervalHistogram,
  monitorEventLoopDelay,
  PerformanceObserver,
  performance,
} from "node:perf_hooks";
import SqliteDriver from "better-sqlite3";
import { createApp } from "../src/app.js";
import { validateConfig } from "../src/config/load-config.js";
import { createDatabase } from "../src/db/database.js";
import { runMigrations } from "../src/db/migrate.js";
import { createLogger } from "../src/logging/logger.js";
import { PdqSearchService } from "../src/media/pdq-search-service.js";
import { PdqHashLogRepository } from "../src/repositories/pdq-hash-log-repository.js";
import { markdownTable } from "./support/markdown.js";
import { flip, randomHash } from "./support/pdq-hashes.js";

const SIZES = (process.env.PDQ_LOOKUP_HASHES ?? "10000,1000000").split(",").map(Number);
const QUERIES = Number(process.env.PDQ_LOOKUP_QUERIES ?? 400);
const KEEP = process.env.PDQ_LOOKUP_KEEP_DB === "1";
const DISTANCE = 31;
const SERVER = "bench.local";
/** The shared SHA-256 values (one row in 100 has one). */
const SHARED_SHA = Array.from({ length: 10 }, (_, k) => String(k).repeat(64));

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!;
}

function memory(): number {
  global.gc?.();
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}

let loads: number[] = [];
const sampleLoad = () => loads.push(loadavg()[0]!);

interface Timing {
  p50: number;
  p99: number;
  max: number;
}

async function timed(queries: readonly string[], run: (q: string) => Promise<unknown>) {
  const times: number[] = [];
  for (const [i, q] of queries.entries()) {
    if (i % 50 === 0) sampleLoad();
    const t0 = performance.now();
    await run(q);
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return { p50: percentile(times, 0.5), p99: percentile(times, 0.99), max: times.at(-1)! };
}

/** Garbage-collector pauses while `run` runs: count, total and the longest. */
async function withGcPauses<T>(run: () => Promise<T>) {
  const pauses: number[] = [];
  const observer = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) pauses.push(entry.duration);
  });
  observer.observe({ entryTypes: ["gc"] });
  const result = await run();
  await new Promise((resolve) => setImmediate(resolve));
  observer.disconnect();
  return { result, gcCount: pauses.length, gcMax: Math.max(0, ...pauses) };
}

function stallMs(histogram: IntervalHistogram): number {
  // The histogram records how late each 1 ms tick ran: its max is the worst stall.
  return histogram.max / 1e6;
}

/**
 * The longest stretch of work without a turn of the event loop, in CPU time:
 * a 1 ms timer notes the process's CPU time at each tick; the largest
 * difference between two ticks is work that held the loop (wall-clock delay
 * also counts time the busy machine gave to other processes; this does not).
 */
function cpuStallMeter() {
  let last = process.cpuUsage();
  let longest = 0;
  const timer = setInterval(() => {
    const now = process.cpuUsage();
    longest = Math.max(longest, (now.user - last.user + now.system - last.system) / 1000);
    last = now;
  }, 1);
  return {
    stop(): number {
      clearInterval(timer);
      return longest;
    },
  };
}

/** A seeded database of `n` hashes: made now, or kept from an earlier run (PDQ_LOOKUP_KEEP_DB). */
async function seeded(n: number, dir: string): Promise<{ path: string; stored: string[] }> {
  const kept = join(tmpdir(), `mxcd-pdq-lookup-${n}.sqlite`);
  const path = KEEP ? kept : join(dir, "mxcd.sqlite");
  if (KEEP && existsSync(kept)) {
    const sqlite = new SqliteDriver(kept, { readonly: true });
    const stored = (
      sqlite.prepare("select pdq from pdq_hash_log where stream_id % 97 = 0").all() as {
        pdq: string;
      }[]
    ).map((r) => r.pdq);
    sqlite.close();
    return { path, stored };
  }
  const building = `${path}.building`;
  const database = createDatabase({ engine: "sqlite", path: building });
  await runMigrations(database);
  await database.close();
  // Bulk rows: one transaction, prepared statements, straight to SQLite.
  const t0 = performance.now();
  const stored: string[] = [];
  const sqlite = new SqliteDriver(building);
  const media = sqlite.prepare(
    `insert into local_media_repository (media_id, media_type, media_length, created_ts,
       user_id, authenticated, sha256, pdq, pdq_quality, pdq_status)
     values (?, 'image/jpeg', 1000, 1, '@u:bench.local', 0, ?, ?, 90, 'hashed')`,
  );
  const log = sqlite.prepare(
    "insert into pdq_hash_log (stream_id, media_origin, media_id, pdq) values (?, null, ?, ?)",
  );
  sqlite.transaction(() => {
    let cluster = "";
    for (let i = 1; i <= n; i++) {
      let hash: string;
      if (i > n * 0.9) {
        if (i % 10 === 1 || cluster === "") cluster = randomHash();
        hash = flip(cluster, Math.floor(Math.random() * 20));
      } else {
        hash = randomHash();
      }
      const id = `m${i}`;
      media.run(id, i % 100 === 0 ? SHARED_SHA[(i / 100) % 10]! : null, hash);
      log.run(i, id, hash);
      if (i % 97 === 0) stored.push(hash);
    }
    sqlite.prepare("update pdq_hash_position set position = ? where id = 1").run(n);
  })();
  sqlite.close();
  renameSync(building, path);
  console.log(
    `(bulk insert of ${n.toLocaleString("en")} rows: ${((performance.now() - t0) / 1000).toFixed(1)} s, set-up only)`,
  );
  return { path, stored };
}

async function benchService(path: string, queries: readonly string[]) {
  const database = createDatabase({ engine: "sqlite", path });
  const service = new PdqSearchService(new PdqHashLogRepository(database), SERVER);
  const before = memory();
  sampleLoad();
  const loop = monitorEventLoopDelay({ resolution: 1 });
  loop.enable();
  const cpu = cpuStallMeter();
  const warm = service.warmUp();
  // Sent as the build starts: it waits for the build, then answers from the whole log.
  const w0 = performance.now();
  await service.findSimilar(queries[0]!, DISTANCE, { limit: 100 });
  const waited = performance.now() - w0;
  await warm;
  const cpuStall = cpu.stop();
  loop.disable();
  const indexBytes = memory() - before;
  let matched = 0;
  const times = await timed(queries, async (q) => {
    matched += (await service.findSimilar(q, DISTANCE, { limit: 100 })).length;
  });
  await database.close();
  return {
    buildMs: service.stats.buildMs,
    stall: stallMs(loop),
    cpuStall,
    waited,
    indexBytes,
    matched: matched / queries.length,
    times,
  };
}

async function benchHttp(path: string, dir: string, queries: readonly string[]) {
  const config = validateConfig({
    server_name: SERVER,
    listen: { host: "127.0.0.1", port: 0 },
    database: { engine: "sqlite", path },
    media_store: { engine: "memory" },
    log_level: "silent",
    signing_key_path: join(dir, "signing.key"),
    // Built at start (the default builds it at the first look-up unless near-duplicate quarantine is on).
    pdq_index: { warm_up: "always" },
  });
  const app = createApp(config, createLogger("silent"));
  const s0 = performance.now();
  const base = await app.start();
  const listening = performance.now() - s0;
  // From "listening" on: the build runs now.
  const loop = monitorEventLoopDelay({ resolution: 1 });
  loop.enable();
  const cpu = cpuStallMeter();
  // GET /health while the index builds, until /metrics says it is built.
  let healthMax = 0;
  let healthCount = 0;
  for (;;) {
    const h0 = performance.now();
    await (await fetch(`${base}/health`)).text();
    healthMax = Math.max(healthMax, performance.now() - h0);
    healthCount += 1;
    const metrics = await (await fetch(`${base}/metrics`)).text();
    if (/^mxcd_pdq_index_state 2$/m.test(metrics)) break;
    // Polled every ~20 ms, so the polling does not compete with the build.
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  const built = performance.now() - s0;
  const cpuStall = cpu.stop();
  loop.disable();
  const localpart = `admin${Date.now()}`;
  const adminId = await app.accounts.register({ localpart, password: "x", admin: true });
  const { accessToken } = await app.accounts.issueToken(adminId, null);
  const get = async (query: string) => {
    const res = await fetch(`${base}/_mxcd/admin/v1/media/lookup?${query}`, {
      headers: { authorization: `Bearer ${accessToken}` },
    });
    if (res.status !== 200) throw new Error(`lookup: ${res.status} ${await res.text()}`);
    return (await res.json()) as { media: unknown[] };
  };
  const pdq = await withGcPauses(() =>
    timed(queries, (q) => get(`pdq=${q}&max_distance=${DISTANCE}&limit=100`)),
  );
  let rows = 0;
  const sha = await withGcPauses(() =>
    timed(
      queries.slice(0, Math.max(50, queries.length / 4)).map((_, i) => SHARED_SHA[i % 10]!),
      async (q) => {
        rows += (await get(`sha256=${q}&limit=100`)).media.length;
      },
    ),
  );
  await app.stop();
  return {
    listening,
    built,
    stall: stallMs(loop),
    cpuStall,
    healthMax,
    healthCount,
    pdq,
    sha,
    shaRows: rows / Math.max(50, queries.length / 4),
  };
}

async function main(): Promise<void> {
  for (const n of SIZES) {
    loads = [];
    const dir = mkdtempSync(join(tmpdir(), "mxcd-pdq-lookup-"));
    try {
      const { path, stored } = await seeded(n, dir);
      const queries = Array.from({ length: QUERIES }, (_, i) =>
        i % 2 === 0 ? randomHash() : flip(stored[i % stored.length]!, 8),
      );
      const service = await benchService(path, queries);
      const http = await benchHttp(path, dir, queries);
      const f = (v: number) => v.toFixed(v < 10 ? 2 : 1);
      const row = (name: string, t: Timing) => [name, f(t.p50), f(t.p99), f(t.max)];
      console.log(
        `\n### PDQ look-up: ${n.toLocaleString("en")} hashes, max_distance ${DISTANCE}\n`,
      );
      console.log(
        `- service build (warmUp): ${f(service.buildMs)} ms; worst event-loop stall during it ${f(service.stall)} ms wall clock, ${f(service.cpuStall)} ms CPU; a query sent as it started waited ${f(service.waited)} ms`,
      );
      console.log(
        `- index memory: ${(service.indexBytes / 1024 ** 2).toFixed(1)} MiB (${(service.indexBytes / n).toFixed(0)} B/hash); matches per PDQ query (mean) ${service.matched.toFixed(2)}`,
      );
      console.log(
        `- app: listening after ${f(http.listening)} ms, index built ${f(http.built)} ms after start(); meanwhile ${http.healthCount} GET /health, slowest ${f(http.healthMax)} ms; worst event-loop stall ${f(http.stall)} ms wall clock, ${f(http.cpuStall)} ms CPU`,
      );
      console.log(
        `- GC during the HTTP PDQ queries: ${http.pdq.gcCount} pauses, longest ${f(http.pdq.gcMax)} ms; during the sha256 pages (${http.shaRows.toFixed(0)} rows each): ${http.sha.gcCount}, longest ${f(http.sha.gcMax)} ms\n`,
      );
      for (const line of markdownTable({
        numeric: [1, 2, 3],
        header: ["", "p50 ms", "p99 ms", "max ms"],
        rows: [
          row("PdqSearchService.findSimilar", service.times),
          row("GET …/media/lookup?pdq=", http.pdq.result),
          row("GET …/media/lookup?sha256= (100 rows)", http.sha.result),
        ],
      })) {
        console.log(line);
      }
      console.log(
        `\n${QUERIES} PDQ queries each (half random, half near-duplicates); load average 1 min during the run: ${Math.min(...loads).toFixed(1)}–${Math.max(...loads).toFixed(1)}`,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
}

await main();
