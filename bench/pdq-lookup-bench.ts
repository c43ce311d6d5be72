/**
 * PDQ look-up at scale (issue 16, "mxcd's own admin API"), in one process,
 * nothing asserted: N stored PDQ hashes (default 1,000,000) in SQLite, local
 * media rows and the PDQ hash log written in bulk; then
 *
 * - PdqSearchService.findSimilar at max_distance 31 (limit 100): the first
 *   query (which builds the index from the log) timed alone, then p50/p99
 *   over many queries, and the memory the index holds (heap + array buffers
 *   after GC, before and after the first query);
 * - `GET /_mxcd/admin/v1/media/lookup?pdq=…&max_distance=31` over loopback
 *   HTTP with an admin token (the app's own index: its first query again
 *   includes the load), p50/p99.
 *
 * Hashes: 90 % random, 10 % in clusters of 10 near-duplicates (distances
 * 0–40). Queries: half random (nothing near), half near-duplicates of a
 * stored hash (a few matches to verify and shape).
 *
 * Run: `npm run bench:pdq-lookup` (PDQ_LOOKUP_HASHES, default 1000000;
 * PDQ_LOOKUP_QUERIES, default 400). The load average is printed: the
 * machine is shared.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
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

const HASHES = Number(process.env.PDQ_LOOKUP_HASHES ?? 1_000_000);
const QUERIES = Number(process.env.PDQ_LOOKUP_QUERIES ?? 400);
const DISTANCE = 31;
const SERVER = "bench.local";

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!;
}

function memory(): number {
  global.gc?.();
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}

const loads: number[] = [];
const sampleLoad = () => loads.push(loadavg()[0]!);

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

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "mxcd-pdq-lookup-"));
  try {
    const path = join(dir, "mxcd.sqlite");
    const database = createDatabase({ engine: "sqlite", path });
    await runMigrations(database);
    await database.close();

    // Bulk rows: one transaction, prepared statements, straight to SQLite.
    sampleLoad();
    const t0 = performance.now();
    const stored: string[] = [];
    const sqlite = new SqliteDriver(path);
    const media = sqlite.prepare(
      `insert into local_media_repository (media_id, media_type, media_length, created_ts,
         user_id, authenticated, pdq, pdq_quality, pdq_status)
       values (?, 'image/jpeg', 1000, 1, '@u:bench.local', 0, ?, 90, 'hashed')`,
    );
    const log = sqlite.prepare(
      "insert into pdq_hash_log (stream_id, media_origin, media_id, pdq) values (?, null, ?, ?)",
    );
    sqlite.transaction(() => {
      let cluster = "";
      for (let i = 1; i <= HASHES; i++) {
        let hash: string;
        if (i > HASHES * 0.9) {
          if (i % 10 === 1 || cluster === "") cluster = randomHash();
          hash = flip(cluster, Math.floor(Math.random() * 20));
        } else {
          hash = randomHash();
        }
        const id = `m${i}`;
        media.run(id, hash);
        log.run(i, id, hash);
        if (i % 97 === 0) stored.push(hash);
      }
      sqlite.prepare("update pdq_hash_position set position = ? where id = 1").run(HASHES);
    })();
    sqlite.close();
    const insertSeconds = (performance.now() - t0) / 1000;

    const queries = Array.from({ length: QUERIES }, (_, i) =>
      i % 2 === 0 ? randomHash() : flip(stored[i % stored.length]!, 8),
    );

    // The service, on its own connection.
    const serviceDb = createDatabase({ engine: "sqlite", path });
    const service = new PdqSearchService(new PdqHashLogRepository(serviceDb), SERVER);
    const before = memory();
    sampleLoad();
    const f0 = performance.now();
    await service.findSimilar(queries[0]!, DISTANCE, { limit: 100 });
    const serviceFirst = performance.now() - f0;
    const indexBytes = memory() - before;
    let matched = 0;
    const serviceTimes = await timed(queries, async (q) => {
      matched += (await service.findSimilar(q, DISTANCE, { limit: 100 })).length;
    });
    await serviceDb.close();

    // Over HTTP.
    const config = validateConfig({
      server_name: SERVER,
      listen: { host: "127.0.0.1", port: 0 },
      database: { engine: "sqlite", path },
      media_store: { engine: "memory" },
      log_level: "silent",
      signing_key_path: join(dir, "signing.key"),
    });
    const app = createApp(config, createLogger("silent"));
    const base = await app.start();
    const adminId = await app.accounts.register({ localpart: "admin", password: "x", admin: true });
    const { accessToken } = await app.accounts.issueToken(adminId, null);
    const lookup = async (q: string) => {
      const res = await fetch(
        `${base}/_mxcd/admin/v1/media/lookup?pdq=${q}&max_distance=${DISTANCE}&limit=100`,
        { headers: { authorization: `Bearer ${accessToken}` } },
      );
      if (res.status !== 200) throw new Error(`lookup: ${res.status} ${await res.text()}`);
      return res.json();
    };
    const h0 = performance.now();
    await lookup(queries[0]!);
    const httpFirst = performance.now() - h0;
    const httpTimes = await timed(queries, lookup);
    await app.stop();

    const f = (v: number) => v.toFixed(v < 10 ? 2 : 1);
    console.log(
      `\n### PDQ look-up: ${HASHES.toLocaleString("en")} hashes, max_distance ${DISTANCE}\n`,
    );
    console.log(`bulk insert (media rows + log): ${insertSeconds.toFixed(1)} s`);
    console.log(
      `index memory after the first query: ${(indexBytes / 1024 ** 2).toFixed(0)} MiB (${(indexBytes / HASHES).toFixed(0)} B/hash)`,
    );
    console.log(`matches per query (service, mean): ${(matched / QUERIES).toFixed(2)}\n`);
    for (const line of markdownTable({
      numeric: [1, 2, 3, 4],
      header: ["", "first query (load) ms", "p50 ms", "p99 ms", "max ms"],
      rows: [
        [
          "PdqSearchService.findSimilar",
          f(serviceFirst),
          f(serviceTimes.p50),
          f(serviceTimes.p99),
          f(serviceTimes.max),
        ],
        [
          "GET /_mxcd/admin/v1/media/lookup",
          f(httpFirst),
          f(httpTimes.p50),
          f(httpTimes.p99),
          f(httpTimes.max),
        ],
      ],
    })) {
      console.log(line);
    }
    console.log(
      `\n${QUERIES} queries each (half random, half near-duplicates); load average 1 min during the run: ${Math.min(...loads).toFixed(1)}–${Math.max(...loads).toFixed(1)}`,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
