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
 * Run on its own: npx tsx bench/room-media-bench.ts   (`npm run bench` runs it too)
 * SQLite always; PostgreSQL too, on a throwaway cluster, when its binaries
 * are installed. MXCD_BENCH_EVENTS overrides the large size (default 1,000,000).
 */
import { performance } from "node:perf_hooks";
import { CompiledQuery, type KyselyPlugin } from "kysely";
import { createDatabase, type Database } from "../src/db/database.js";
import { runMigrations } from "../src/db/migrate.js";
import { MediaReferenceRepository } from "../src/repositories/media-reference-repository.js";
import type { Cleanup } from "./support/cleanup.js";
import { type EngineFactory, standaloneEngines } from "./support/engines.js";
import { tempDir } from "./support/files.js";
import { type Latency, sampleLatency } from "./support/latency.js";
import { isMainModule, runMain } from "./support/main.js";
import { count, markdownTable, type Table, times } from "./support/markdown.js";

const SERVER = "bench.local";
const ROOMS = 1_000;
const BATCH = 1_000;
const SMALL = { roomId: `!small:${SERVER}`, events: 50 };
const LARGE = { roomId: `!large:${SERVER}`, events: 5_000 };
/** Timed calls per room and size (after 5 untimed ones). */
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

export interface RoomMediaBenchOptions {
  /** Total events: the small size, then the large one. */
  readonly sizes: readonly number[];
  readonly engines: readonly EngineFactory[];
}

export interface RoomMediaResult {
  readonly engine: string;
  readonly events: number;
  readonly room: "small" | "large";
  readonly roomEvents: number;
  readonly distinctMedia: number;
  readonly latency: Latency;
}

export interface RoomMediaRun {
  readonly results: RoomMediaResult[];
  /** Each engine's plan for the large room's query at the largest size. */
  readonly plans: ReadonlyArray<{ readonly engine: string; readonly plan: string }>;
}

/** The two sizes: 10,000 events and MXCD_BENCH_EVENTS (default 1,000,000). */
export function roomMediaSizesFromEnv(env: NodeJS.ProcessEnv): number[] {
  const large = Number(env.MXCD_BENCH_EVENTS ?? 1_000_000);
  if (!Number.isInteger(large) || large < 10_000) {
    throw new Error("MXCD_BENCH_EVENTS must be a whole number >= 10000");
  }
  return [10_000, large];
}

/** For each engine, one database grown through the sizes, both rooms timed at each. */
export async function benchRoomMedia(
  options: RoomMediaBenchOptions,
  cleanup: Cleanup,
): Promise<RoomMediaRun> {
  const results: RoomMediaResult[] = [];
  const plans: { engine: string; plan: string }[] = [];
  for (const engine of options.engines) {
    const config = await engine.database("room_media");
    const database = createDatabase(
      config.engine === "postgres" ? { ...config, max_connections: 2 } : config,
    );
    cleanup.add("close the room media database", () => database.close());
    try {
      await runMigrations(database);
      const references = new MediaReferenceRepository(database);
      let filled = 0;
      for (const total of options.sizes) {
        const started = performance.now();
        await fillTo(database, filled + 1, total);
        filled = total;
        // What autovacuum would have done by now on a live server: statistics and the visibility map.
        if (database.engine === "postgres") {
          await database.db.executeQuery(CompiledQuery.raw("VACUUM ANALYZE media_references"));
        }
        console.error(
          `room media: ${engine.name}: ${count(total)} events in ${((performance.now() - started) / 1000).toFixed(1)} s`,
        );
        for (const probe of [SMALL, LARGE]) {
          const media = await references.roomMedia(probe.roomId);
          const latency = await sampleLatency(RUNS, () => references.roomMedia(probe.roomId), 5);
          results.push({
            engine: engine.name,
            events: total,
            room: probe === SMALL ? "small" : "large",
            roomEvents: probe.events,
            distinctMedia: media.length,
            latency,
          });
        }
      }
      plans.push({ engine: engine.name, plan: await explainRoomMedia(database, LARGE.roomId) });
    } finally {
      await database.close();
    }
  }
  return { results, plans };
}

/** The results as a Markdown table, each median relative to the same room's at the smallest size. */
export function roomMediaTable(results: readonly RoomMediaResult[]): Table {
  const base = (r: RoomMediaResult) =>
    results
      .filter((o) => o.engine === r.engine && o.room === r.room)
      .reduce((a, b) => (b.events < a.events ? b : a));
  return {
    header: [
      "engine",
      "total events",
      "room",
      "median (ms)",
      "p95 (ms)",
      "median ÷ smallest size's",
    ],
    numeric: [1, 3, 4, 5],
    rows: results.map((r) => [
      r.engine,
      count(r.events),
      `${r.room} (${count(r.roomEvents)} events, ${count(r.distinctMedia)} distinct media)`,
      r.latency.median.toFixed(2),
      r.latency.p95.toFixed(2),
      times(r.latency.median / base(r).latency.median),
    ]),
  };
}

if (isMainModule(import.meta.url)) {
  await runMain(async (cleanup) => {
    const dir = tempDir(cleanup, "mxcd-room-media-bench-");
    const run = await benchRoomMedia(
      {
        sizes: roomMediaSizesFromEnv(process.env),
        engines: await standaloneEngines(cleanup, dir),
      },
      cleanup,
    );
    for (const { engine, plan } of run.plans) console.error(`${engine} plan:\n${plan}`);
    console.log(`\nRoom media query (\`roomMedia\`), ${RUNS} runs each, times in ms:\n`);
    console.log(markdownTable(roomMediaTable(run.results)).join("\n"));
  });
}
