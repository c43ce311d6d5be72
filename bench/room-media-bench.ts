/**
 * Room media query cost versus database size.
 *
 * Fills a database with synthetic events (10 % of them referencing media)
 * across 1,000 rooms, straight into the `events` and `media_references`
 * tables in batches, then times `MediaReferenceRepository.roomMedia` (the
 * admin room media list) for a small and a large room at 10,000 and at
 * 1,000,000 events. The two measured rooms hold the same events at both
 * sizes, so equal times show the query does not depend on the total.
 *
 * Usage: npx tsx bench/room-media-bench.ts
 * SQLite always; PostgreSQL too when MXCD_BENCH_POSTGRES_URL names a database
 * server (a throwaway database is created in it and dropped afterwards).
 * MXCD_BENCH_EVENTS overrides the large size (default 1,000,000).
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { CompiledQuery, type KyselyPlugin } from "kysely";
import pg from "pg";
import { createDatabase, type Database } from "../src/db/database.js";
import { runMigrations } from "../src/db/migrate.js";
import { MediaReferenceRepository } from "../src/repositories/media-reference-repository.js";

const SERVER = "bench.local";
const ROOMS = 1_000;
const BATCH = 1_000;
const SMALL = { roomId: `!small:${SERVER}`, events: 50 };
const LARGE = { roomId: `!large:${SERVER}`, events: 5_000 };
const SIZES = [10_000, Number(process.env.MXCD_BENCH_EVENTS ?? 1_000_000)];
const RUNS = 50;

interface Row {
  room: string;
  ordering: number;
}

/** Writes events `from`..`to` (stream orderings) of the given rooms, with their media references. */
async function insertEvents(database: Database, rows: Row[]): Promise<void> {
  const events = rows.map(({ room, ordering }) => ({
    stream_ordering: ordering,
    event_id: `$bench${ordering}`,
    room_id: room,
    type: "m.room.message",
    state_key: null,
    sender: `@user${ordering % 97}:${SERVER}`,
    content: JSON.stringify(
      hasMedia(ordering)
        ? { msgtype: "m.image", body: "i.png", url: mediaUrl(ordering) }
        : { msgtype: "m.text", body: `message ${ordering}` },
    ),
    origin_server_ts: 1_700_000_000_000 + ordering,
    redacts: null,
    redacted: false,
    redacted_by: null,
  }));
  const references = rows
    .filter((r) => hasMedia(r.ordering))
    .flatMap(({ room, ordering }) => {
      const base = {
        room_id: room,
        event_id: `$bench${ordering}`,
        stream_ordering: ordering,
        user_id: null,
      };
      const origin = ordering % 3 === 0 ? "remote.example" : SERVER;
      const refs = [{ ...base, kind: "url", media_origin: origin, media_id: mediaId(ordering) }];
      if (ordering % 20 === 0) {
        refs.push({
          ...base,
          kind: "thumbnail",
          media_origin: SERVER,
          media_id: `T${mediaId(ordering)}`,
        });
      }
      return refs;
    });
  await database.transaction(async (tx) => {
    await tx.insertInto("events").values(events).execute();
    if (references.length > 0) await tx.insertInto("media_references").values(references).execute();
  });
}

const hasMedia = (ordering: number) => ordering % 10 === 0;
/** Media ids repeat every 400 events, so rooms reference some media more than once. */
const mediaId = (ordering: number) => `M${ordering % 4_000}`;
const mediaUrl = (ordering: number) => `mxc://${SERVER}/${mediaId(ordering)}`;

/** Fills the database up to `total` events: the two measured rooms first, then filler rooms. */
async function fillTo(database: Database, from: number, total: number): Promise<void> {
  let ordering = from;
  let batch: Row[] = [];
  const flush = async () => {
    if (batch.length > 0) await insertEvents(database, batch);
    batch = [];
  };
  if (from === 1) {
    for (const probe of [SMALL, LARGE]) {
      for (let i = 0; i < probe.events; i++) {
        batch.push({ room: probe.roomId, ordering: ordering++ });
        if (batch.length === BATCH) await flush();
      }
    }
  }
  while (ordering <= total) {
    batch.push({ room: `!filler${ordering % (ROOMS - 2)}:${SERVER}`, ordering: ordering++ });
    if (batch.length === BATCH) await flush();
  }
  await flush();
}

/** Median and 95th percentile of `RUNS` timed calls, after a warm-up. */
async function time(work: () => Promise<unknown>): Promise<{ median: number; p95: number }> {
  for (let i = 0; i < 5; i++) await work();
  const samples: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const start = performance.now();
    await work();
    samples.push(performance.now() - start);
  }
  samples.sort((a, b) => a - b);
  return { median: samples[Math.floor(RUNS / 2)]!, p95: samples[Math.floor(RUNS * 0.95)]! };
}

/** The engine's plan for the room media query, to show which index serves it. */
async function explainRoomMedia(database: Database, roomId: string): Promise<string> {
  let captured: CompiledQuery | undefined;
  const executor = database.db.getExecutor();
  const capture: KyselyPlugin = {
    transformQuery: (args) => {
      captured = executor.compileQuery(args.node, args.queryId);
      return args.node;
    },
    transformResult: async (args) => args.result,
  };
  await new MediaReferenceRepository({
    ...database,
    db: database.db.withPlugin(capture),
  }).roomMedia(roomId);
  const prefix = database.engine === "sqlite" ? "EXPLAIN QUERY PLAN " : "EXPLAIN ";
  const plan = await database.db.executeQuery<Record<string, unknown>>(
    CompiledQuery.raw(prefix + captured!.sql, [...captured!.parameters]),
  );
  return plan.rows.map((r) => String(r.detail ?? r["QUERY PLAN"])).join("\n");
}

async function benchEngine(name: string, database: Database): Promise<string[]> {
  await runMigrations(database);
  const references = new MediaReferenceRepository(database);
  const lines: string[] = [];
  let filled = 0;
  for (const total of SIZES) {
    const started = performance.now();
    await fillTo(database, filled + 1, total);
    filled = total;
    // What autovacuum would have done by now on a live server: statistics and the visibility map.
    if (database.engine === "postgres") {
      await database.db.executeQuery(CompiledQuery.raw("VACUUM ANALYZE media_references"));
    }
    console.error(
      `${name}: ${total} events in ${((performance.now() - started) / 1000).toFixed(1)} s`,
    );
    for (const probe of [SMALL, LARGE]) {
      const media = await references.roomMedia(probe.roomId);
      const { median, p95 } = await time(() => references.roomMedia(probe.roomId));
      const label = probe === SMALL ? "small" : "large";
      lines.push(
        `| ${name} | ${total.toLocaleString("en")} | ${label} (${probe.events} events, ${media.length} distinct media) | ${median.toFixed(2)} | ${p95.toFixed(2)} |`,
      );
    }
  }
  console.error(
    `${name} plan at ${filled} events:\n${await explainRoomMedia(database, LARGE.roomId)}`,
  );
  return lines;
}

async function withPostgres(url: string, work: (database: Database) => Promise<string[]>) {
  const name = `mxcd_bench_${randomBytes(4).toString("hex")}`;
  const admin = new pg.Client({ connectionString: url });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  const target = new URL(url);
  target.pathname = `/${name}`;
  const database = createDatabase({
    engine: "postgres",
    url: target.toString(),
    max_connections: 2,
  });
  try {
    return await work(database);
  } finally {
    await database.close();
    await admin.query(`DROP DATABASE ${name}`);
    await admin.end();
  }
}

async function main(): Promise<void> {
  const rows: string[] = [];
  const dir = mkdtempSync(join(tmpdir(), "mxcd-bench-"));
  const sqlite = createDatabase({ engine: "sqlite", path: join(dir, "bench.sqlite") });
  try {
    rows.push(...(await benchEngine("SQLite", sqlite)));
  } finally {
    await sqlite.close();
    rmSync(dir, { recursive: true, force: true });
  }
  const postgresUrl = process.env.MXCD_BENCH_POSTGRES_URL;
  if (postgresUrl)
    rows.push(...(await withPostgres(postgresUrl, (db) => benchEngine("PostgreSQL", db))));
  else console.error("MXCD_BENCH_POSTGRES_URL not set: PostgreSQL skipped");
  console.log(`\nRoom media query (\`roomMedia\`), ${RUNS} runs each, times in ms:\n`);
  console.log("| engine | total events | room | median | p95 |");
  console.log("| --- | ---: | --- | ---: | ---: |");
  for (const row of rows) console.log(row);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
