/**
 * The moderation console's grid query (issue 18): `GET /_mxcd/admin/v1/media`
 * over loopback HTTP on the embedded default (SQLite, filesystem store),
 * nothing asserted. A fresh database gets CONSOLE_LIST_MEDIA rows (default
 * 100,000: 80 % local from 50 users, 20 % cached remote from 20 servers,
 * created over a year, 1 % quarantined, four media types) and 20,000
 * room references over 200 rooms, written in bulk; then the app starts and,
 * with an admin token, each query below is timed for CONSOLE_LIST_ROUNDS
 * rounds (default 5) of CONSOLE_LIST_REQUESTS requests (default 40):
 *
 * - the first page, unfiltered (limit 50) — what the grid shows first;
 * - the first page with one filter each: uploader, origin, type prefix,
 *   quarantined, room; and with filters no index seeks on (they filter the
 *   walk down the created_ts index): a common one, a rare one (~0.1 % of
 *   rows), and two that match nothing (the worst case: the whole index);
 * - a page 200 pages deep (its `from` taken by walking there first);
 * - the summary (COUNT/SUM) unfiltered and for one uploader.
 *
 * Per query: p50 and p99 of each round, the spread of the round p50s, and
 * CPU time per request of this process (server and client both live in it).
 * The load average is printed: the machine is shared.
 *
 * Run: `npm run bench:console-list`. CONSOLE_LIST_WITHOUT_INDEXES=1 drops
 * migration 0015's indexes after seeding (the A/B: what a page costs when
 * the table must be sorted).
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
import { seedListingMedia } from "./support/listing-seed.js";
import { markdownTable } from "./support/markdown.js";

const MEDIA = Number(process.env.CONSOLE_LIST_MEDIA ?? 100_000);
const ROUNDS = Number(process.env.CONSOLE_LIST_ROUNDS ?? 5);
const REQUESTS = Number(process.env.CONSOLE_LIST_REQUESTS ?? 40);
const SERVER = "bench.local";
const WITHOUT_INDEXES = process.env.CONSOLE_LIST_WITHOUT_INDEXES === "1";
/** Migration 0015's indexes (dropped for the A/B run). */
const LISTING_INDEXES = [
  "local_media_created_id",
  "local_media_user_created_id",
  "local_media_quarantined_created",
  "remote_media_created_id",
  "remote_media_origin_created_id",
  "remote_media_quarantined_created",
];

/** Seeds the media rows, then drops the 0015 indexes for the A/B run. */
function seed(path: string): void {
  seedListingMedia(path, MEDIA, SERVER);
  if (!WITHOUT_INDEXES) return;
  const sqlite = new SqliteDriver(path);
  for (const name of LISTING_INDEXES) sqlite.exec(`drop index ${name}`);
  sqlite.close();
}

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? Number.NaN;
}

const f = (n: number) => (n >= 10 ? n.toFixed(0) : n.toFixed(2));

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "mxcd-console-list-"));
  try {
    const path = join(dir, "mxcd.sqlite");
    const database = createDatabase({ engine: "sqlite", path });
    await runMigrations(database);
    await database.close();
    const s0 = performance.now();
    seed(path);
    console.log(`seeded ${MEDIA} media in ${f((performance.now() - s0) / 1000)} s`);

    const config = validateConfig({
      server_name: SERVER,
      listen: { host: "127.0.0.1", port: 0 },
      database: { engine: "sqlite", path },
      media_store: { engine: "filesystem", path: join(dir, "media") },
      log_level: "silent",
      signing_key_path: join(dir, "signing.key"),
    });
    const app = createApp(config, createLogger("silent"));
    const base = await app.start();
    try {
      const adminId = await app.accounts.register({
        localpart: "admin",
        password: "x",
        admin: true,
      });
      const { accessToken } = await app.accounts.issueToken(adminId, null);
      const get = async (query: string) => {
        const res = await fetch(`${base}/_mxcd/admin/v1/media${query}`, {
          headers: { authorization: `Bearer ${accessToken}` },
        });
        const body = (await res.json()) as { media?: unknown[]; next_batch?: string };
        if (res.status !== 200) throw new Error(`${query}: ${res.status} ${JSON.stringify(body)}`);
        return body;
      };
      // A page 200 pages deep: walk there once.
      let deep: string | undefined;
      for (let i = 0; i < 200; i++) {
        deep = (await get(`?limit=50${deep ? `&from=${deep}` : ""}`)).next_batch;
      }
      const queries: [string, string][] = [
        ["first page, no filter", "?limit=50"],
        ["first page, user_id", `?limit=50&user_id=%40user7%3A${SERVER}`],
        ["first page, origin (remote)", "?limit=50&origin=remote3.example"],
        ["first page, origin=local", "?limit=50&origin=local"],
        ["first page, media_type=image/", "?limit=50&media_type=image%2F"],
        ["first page, quarantined=true", "?limit=50&quarantined=true"],
        // Filters the index walk cannot seek on: a common value stops early,
        // a rare one walks far, one that matches nothing walks the whole index.
        ["first page, quarantined=false", "?limit=50&quarantined=false"],
        ["first page, min_size (~0.1 % match)", "?limit=50&min_size=4995000"],
        ["first page, media_type matching nothing", "?limit=50&media_type=text%2Fplain"],
        ["first page, protected=true (none)", "?limit=50&protected=true"],
        ["first page, room_id", `?limit=50&room_id=%21room5%3A${SERVER}`],
        ["page 201, no filter", `?limit=50&from=${deep}`],
        ["summary, no filter", "/summary"],
        ["summary, user_id", `/summary?user_id=%40user7%3A${SERVER}`],
      ];
      const loads: number[] = [loadavg()[0] ?? 0];
      const rows: string[][] = [];
      for (const [name, query] of queries) {
        const p50s: number[] = [];
        const p99s: number[] = [];
        let cpu = 0;
        await get(query); // warm: the statement cache and the token cache
        for (let round = 0; round < ROUNDS; round++) {
          const times: number[] = [];
          const c0 = process.cpuUsage();
          for (let i = 0; i < REQUESTS; i++) {
            const t0 = performance.now();
            await get(query);
            times.push(performance.now() - t0);
          }
          const c = process.cpuUsage(c0);
          cpu += (c.user + c.system) / 1000;
          times.sort((a, b) => a - b);
          p50s.push(percentile(times, 0.5));
          p99s.push(percentile(times, 0.99));
          loads.push(loadavg()[0] ?? 0);
        }
        const sorted = [...p50s].sort((a, b) => a - b);
        rows.push([
          name,
          f(percentile(sorted, 0.5)),
          `${f(sorted[0] ?? 0)}–${f(sorted.at(-1) ?? 0)}`,
          f(Math.max(...p99s)),
          f(cpu / (ROUNDS * REQUESTS)),
        ]);
      }
      console.log(
        `\n${MEDIA} media${WITHOUT_INDEXES ? " WITHOUT the 0015 indexes" : ""}, ${ROUNDS} rounds × ${REQUESTS} requests; load average ${f(Math.min(...loads))}–${f(Math.max(...loads))}\n`,
      );
      const header = ["query", "p50 ms (median round)", "round p50s", "p99 ms (worst round)"];
      console.log(
        markdownTable({ header: [...header, "CPU ms/req"], rows, numeric: [1, 3, 4] }).join("\n"),
      );
    } finally {
      await app.stop();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
