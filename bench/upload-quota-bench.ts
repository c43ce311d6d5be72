/**
 * `npm run bench:quota`: what the upload quota check costs a 1 MiB upload
 * (issue 17; docs/media.md "Upload limits").
 *
 * One in-process mxcd per engine (SQLite, and PostgreSQL when its binaries
 * are installed), filesystem store, two users on the same server:
 * `@off` matches an override with no window (the path of a server without
 * quotas: no reservation, no query), `@on` has three windows (1h, 1d, 30d,
 * large enough never to refuse) and `MXCD_BENCH_QUOTA_PRIOR` (10,000) prior
 * uploads inside all of them, so every check sums 10,000 rows, and `@fresh`
 * has the same windows and no prior upload (the check's fixed cost: its
 * statements and commits, without the window sums); `@again` is `@off`'s
 * twin, an A/A control: its difference to `@off` is the bench's noise.
 *
 * `MXCD_BENCH_QUOTA_ROUNDS` (5; a multiple of 4 balances the order) rounds;
 * in each, `MXCD_BENCH_QUOTA_UPLOADS` (10) uploads of 1 MiB (with
 * Content-Length) as each user, the legs in a Williams order (ORDERS).
 * A leg's figure is its CPU time per upload — this process's (user +
 * system, client and worker threads included — the same for every leg)
 * plus, on PostgreSQL, the cluster's
 * (every process under its postmaster: the window sums run there) — and its
 * wall time per upload. The report gives each round's on/off and fresh/off
 * ratios, their mean and spread (min–max); the SQL statements, commits and
 * round trips (statements + BEGIN + COMMIT) per upload of each leg (counted
 * in Kysely's executor and driver, outside the timed rounds); the wall time
 * per upload spent in the quota repository (`reserve`, the check before the
 * body, and `drop`, the reservation's end in the row's transaction); the
 * time of the quota's usage query alone (the window sums), for scale; the
 * check alone (`reserve` called directly for `@on` and `@fresh`, median wall
 * and PostgreSQL CPU per check); each round's difference to `off` in ms;
 * the database writes of an upload alone, with and without a quota
 * (timeDatabaseWork); and the load average.
 * `MXCD_BENCH_QUOTA_SQL=1` prints each statement's count and total time per
 * leg.
 *
 * The section replaces "## Upload quota" in bench/RESULTS.md
 * (MXCD_BENCH_RESULTS). Nothing here asserts a time.
 */
import { randomBytes } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { loadavg } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { pathToFileURL } from "node:url";
import { DefaultQueryExecutor, PostgresDriver, SqliteDriver, sql } from "kysely";
import pg from "pg";
import type * as AppModule from "../src/app.js";
import type { DatabaseConfig } from "../src/config/config-schema.js";
import type * as ConfigModule from "../src/config/load-config.js";
import type * as DatabaseModule from "../src/db/database.js";
import type * as MigrateModule from "../src/db/migrate.js";
import type * as HashesModule from "../src/domain/media-hashes.js";
import type * as SigningKeyModule from "../src/federation/signing-key.js";
import type * as LoggerModule from "../src/logging/logger.js";
import type * as QuotaServiceModule from "../src/media/upload-quota-service.js";
import type * as QuotaRepositoryModule from "../src/repositories/upload-quota-repository.js";
import type { Cleanup } from "./support/cleanup.js";
import { cpuSeconds } from "./support/cpu-time.js";
import { type EngineFactory, standaloneEngines } from "./support/engines.js";
import { tempDir } from "./support/files.js";
import { isMainModule, runMain } from "./support/main.js";
import { count, markdownTable, times } from "./support/markdown.js";
import { writeSection } from "./support/results-file.js";

/**
 * The mxcd build under test: this checkout's `dist/` (`npm run bench:quota`
 * builds it), or `MXCD_BENCH_QUOTA_BUILD`, another build's `dist/` for an A/B
 * (its `node_modules` must be this checkout's, e.g. a symlink, so that the
 * statement counts below see its Kysely; the bench stops if they do not).
 */
const BUILD = process.env.MXCD_BENCH_QUOTA_BUILD ?? join(import.meta.dirname, "..", "dist");
const BUILD_LABEL = process.env.MXCD_BENCH_QUOTA_BUILD
  ? `\`${process.env.MXCD_BENCH_QUOTA_BUILD}\``
  : "this checkout";
const fromBuild = <T>(path: string): Promise<T> =>
  import(pathToFileURL(join(BUILD, "src", path)).href) as Promise<T>;
const { createApp } = await fromBuild<typeof AppModule>("app.js");
const { validateConfig } = await fromBuild<typeof ConfigModule>("config/load-config.js");
const { createDatabase } = await fromBuild<typeof DatabaseModule>("db/database.js");
const { runMigrations } = await fromBuild<typeof MigrateModule>("db/migrate.js");
const { NOT_AN_IMAGE } = await fromBuild<typeof HashesModule>("domain/media-hashes.js");
const { formatSigningKeyFile, generateSigningKey } = await fromBuild<typeof SigningKeyModule>(
  "federation/signing-key.js",
);
const { createLogger } = await fromBuild<typeof LoggerModule>("logging/logger.js");
const { UploadQuotaService } = await fromBuild<typeof QuotaServiceModule>(
  "media/upload-quota-service.js",
);
const { UploadQuotaRepository } = await fromBuild<typeof QuotaRepositoryModule>(
  "repositories/upload-quota-repository.js",
);
type UploadQuotaRepository = QuotaRepositoryModule.UploadQuotaRepository;

const ROUNDS = Number(process.env.MXCD_BENCH_QUOTA_ROUNDS ?? 5);
const UPLOADS = Number(process.env.MXCD_BENCH_QUOTA_UPLOADS ?? 10);
const PRIOR = Number(process.env.MXCD_BENCH_QUOTA_PRIOR ?? 10_000);
const SIZE = 1024 * 1024;
const ON = "@on:bench.local";
/**
 * `again` is a second user without a quota, `off`'s twin: its difference to
 * `off` is the bench's own noise floor (an A/A control) for the others'.
 */
const LEGS = ["off", "on", "fresh", "again"] as const;
/**
 * The legs' order in round r: row r mod 4 of a Williams square, so that over
 * every 4 rounds each leg runs once in each position and follows each other
 * leg once (a plain rotation made `fresh` follow `on` in most rounds).
 */
const ORDERS = [
  [0, 3, 1, 2],
  [1, 0, 2, 3],
  [2, 1, 3, 0],
  [3, 2, 0, 1],
] as const;
type LegName = (typeof LEGS)[number];
const HOUR = 3_600_000;

interface Leg {
  cpuMs: number;
  wallMs: number;
  /** Wall time per upload in the quota repository: the check before the body, the reservation's end. */
  reserveMs: number;
  dropMs: number;
  /** PostgreSQL's CPU time per upload (every process of its cluster); 0 on SQLite (in-process: in cpuMs). */
  dbCpuMs: number;
}

interface EngineResult {
  engine: string;
  rounds: Record<LegName, Leg>[];
  /** Statements and commits per upload of each leg. */
  sql: Record<LegName, { statements: number; begins: number; commits: number }>;
  usageQueryMs: number;
  checkAlone: Record<"on" | "fresh", CheckAlone>;
  databaseWork: DatabaseWork;
  /** The 1-minute load average before the first round and after the last. */
  load: readonly [number, number];
}

/**
 * Statements run, transactions begun and committed in this process, by every
 * Kysely instance, and the wall time spent in the quota repository's
 * `reserve` (the check before the body) and `drop` (the reservation's end).
 */
const counted = { statements: 0, begins: 0, commits: 0, reserveMs: 0, dropMs: 0 };
/** With MXCD_BENCH_QUOTA_SQL=1: statements by their SQL's start (count, total ms), printed per leg. */
const traced =
  process.env.MXCD_BENCH_QUOTA_SQL === "1"
    ? new Map<string, { n: number; ms: number }>()
    : undefined;

/**
 * Counts every statement (Kysely's executor, inside transactions too; BEGIN
 * and COMMIT not included) and every explicit commit (the drivers'
 * `commitTransaction`; a write outside a transaction commits on its own and
 * is not in this count). The figures to compare are the legs' differences.
 */
function countStatements(): void {
  const executor = DefaultQueryExecutor.prototype;
  const execute = executor.executeQuery;
  executor.executeQuery = async function (this: DefaultQueryExecutor, ...args) {
    counted.statements++;
    if (!traced) return execute.apply(this, args);
    const text = args[0].sql.replace(/\s+/g, " ").slice(0, 70);
    const started = performance.now();
    try {
      return await execute.apply(this, args);
    } finally {
      const entry = traced.get(text) ?? { n: 0, ms: 0 };
      traced.set(text, { n: entry.n + 1, ms: entry.ms + performance.now() - started });
    }
  } as typeof execute;
  for (const driver of [SqliteDriver.prototype, PostgresDriver.prototype]) {
    const begin = driver.beginTransaction;
    driver.beginTransaction = function (this: typeof driver, ...args: unknown[]) {
      counted.begins++;
      return (begin as (...a: unknown[]) => Promise<void>).apply(this, args);
    } as typeof begin;
    const commit = driver.commitTransaction;
    driver.commitTransaction = function (this: typeof driver, ...args) {
      counted.commits++;
      return commit.apply(this, args);
    } as typeof commit;
  }
  const repository = UploadQuotaRepository.prototype;
  for (const [method, field] of [
    ["reserve", "reserveMs"],
    ["drop", "dropMs"],
  ] as const) {
    const original = repository[method] as (...args: unknown[]) => Promise<unknown>;
    (repository as unknown as Record<string, unknown>)[method] = async function (
      this: UploadQuotaRepository,
      ...args: unknown[]
    ) {
      const started = performance.now();
      try {
        return await original.apply(this, args);
      } finally {
        counted[field] += performance.now() - started;
      }
    };
  }
}

/**
 * `PRIOR` rows of `@on`, spread over the last half hour (inside every
 * window), with their hashes settled: a hash backfill working through them
 * would otherwise run beside the timed rounds (it did until 2026-12-02).
 */
async function seed(config: DatabaseConfig): Promise<void> {
  const database = createDatabase(config);
  try {
    await runMigrations(database);
    const now = Date.now();
    const series =
      config.engine === "postgres"
        ? sql`select generate_series(1, ${PRIOR}::integer) as n`
        : sql`with recursive s(n) as (select 1 union all select n + 1 from s where n < ${PRIOR}) select n from s`;
    await sql`
      insert into local_media_repository (media_id, media_type, media_length, created_ts, user_id, safe_from_quarantine, authenticated, sha256, md5, pdq_status, pdq_reason)
      select 'prior' || n, 'application/octet-stream', 1000 + n, cast(${now - HOUR / 2} as bigint) + n * 100, ${ON}, ${false}, ${true}, 'x', 'x', 'none', ${NOT_AN_IMAGE}
      from (${series}) as ids`.execute(database.db);
    if (config.engine === "postgres") await sql`analyze`.execute(database.db);
  } finally {
    await database.close();
  }
}

/** Median time of the usage query (three window sums) for `@on`. */
async function timeUsageQuery(config: DatabaseConfig): Promise<number> {
  const database = createDatabase(config);
  try {
    const repo = new UploadQuotaRepository(database);
    const now = Date.now();
    const sinces = [now - HOUR, now - 24 * HOUR, now - 30 * 24 * HOUR];
    const samples: number[] = [];
    for (let i = 0; i < 50; i++) {
      const started = performance.now();
      await repo.usage(ON, sinces, now);
      samples.push(performance.now() - started);
    }
    return samples.sort((a, b) => a - b)[samples.length >> 1]!;
  } finally {
    await database.close();
  }
}

/** The check before the body alone, for `@on` and `@fresh`: median wall and PostgreSQL CPU per call. */
interface CheckAlone {
  wallMs: number;
  dbCpuMs: number;
}

/**
 * `UploadQuotaRepository.reserve` alone, 100 calls per user in turns of 10
 * (the bench's three windows, 1 byte each, then removed): the whole check
 * before an upload's body — round trips, lock, sums, insert, commit —
 * without the upload around it, so its figures are far less noisy.
 */
async function timeCheckAlone(
  config: DatabaseConfig,
  dbCpu: () => number,
): Promise<Record<"on" | "fresh", CheckAlone>> {
  const database = createDatabase(config);
  try {
    const repo = new UploadQuotaRepository(database);
    const users = { on: ON, fresh: "@fresh:bench.local" } as const;
    const samples = { on: [] as number[], fresh: [] as number[] };
    const cpu = { on: 0, fresh: 0 };
    let id = 0;
    for (let turn = 0; turn < 10; turn++) {
      for (const who of ["on", "fresh"] as const) {
        const cpu0 = dbCpu();
        for (let i = 0; i < 10; i++) {
          const now = Date.now();
          const started = performance.now();
          await repo.reserve({
            reservationId: `check-alone-${++id}`,
            userId: users[who],
            owner: "bench",
            windows: [
              { sinceTs: now - HOUR, maxBytes: 2 ** 40 },
              { sinceTs: now - 24 * HOUR, maxBytes: 2 ** 40 },
              { sinceTs: now - 30 * 24 * HOUR, maxBytes: 2 ** 41 },
            ],
            atLeast: 1,
            atMost: 1,
            now,
            expiresTs: now + 60_000,
          });
          samples[who].push(performance.now() - started);
        }
        cpu[who] += (dbCpu() - cpu0) * 1000;
      }
    }
    await database.db
      .deleteFrom("media_upload_reservations")
      .where("owner", "=", "bench")
      .execute();
    const median = (values: number[]) => values.sort((a, b) => a - b)[values.length >> 1]!;
    return {
      on: { wallMs: median(samples.on), dbCpuMs: cpu.on / samples.on.length },
      fresh: { wallMs: median(samples.fresh), dbCpuMs: cpu.fresh / samples.fresh.length },
    };
  } finally {
    await database.close();
  }
}

/** An upload's database writes alone, CPU ms per upload (mxcd + PostgreSQL): without and with a quota. */
interface DatabaseWork {
  off: number;
  fresh: number;
  /** Each pair's difference (fresh − off), sorted. */
  differences: number[];
}

/**
 * The database writes of an upload without the upload around it, in
 * alternating blocks of 100: `off` stores the media row in a transaction;
 * `fresh` first reserves through UploadQuotaService (the check before the
 * body) and then stores the row and drops the reservation in one
 * transaction, as an upload with a quota does. Users change every 50
 * uploads, so the windows hold as few rows as the `fresh` leg's. Far less
 * noisy than a 1 MiB upload (no bytes, no HTTP, no GC of buffers): the
 * quota's own cost in the database, commits and checkpoints included.
 */
async function timeDatabaseWork(
  config: DatabaseConfig,
  dbCpu: () => number,
): Promise<DatabaseWork> {
  const database = createDatabase(config);
  try {
    const windows = [
      { periodMs: HOUR, maxBytes: 2 ** 40 },
      { periodMs: 24 * HOUR, maxBytes: 2 ** 40 },
      { periodMs: 720 * HOUR, maxBytes: 2 ** 41 },
    ];
    const quota = new UploadQuotaService(
      { maxUploadSize: 2 * SIZE, windows, overrides: [], infoUri: "https://bench.local/" },
      new UploadQuotaRepository(database),
      { warn: () => {} },
    );
    let id = 0;
    const row = (tx: typeof database.db, userId: string) =>
      tx
        .insertInto("local_media_repository")
        .values({
          media_id: `work${++id}`,
          media_type: "application/octet-stream",
          media_length: SIZE,
          created_ts: Date.now(),
          user_id: userId,
          safe_from_quarantine: false,
          authenticated: true,
          sha256: "x",
          md5: "x",
          pdq_status: "none",
        })
        .execute();
    const work = {
      off: () => database.transaction((tx) => row(tx, "@work-off:bench.local")),
      fresh: async () => {
        const userId = `@work-fresh-${Math.floor(id / 50)}:bench.local`;
        const reservation = await quota.reserve(quota.limitsFor(userId), userId, SIZE);
        await database.transaction(async (tx) => {
          await row(tx, userId);
          await reservation?.settle(tx);
        });
      },
    };
    const cpuMs = () => {
      const used = process.cpuUsage();
      return (used.user + used.system) / 1000 + dbCpu() * 1000;
    };
    for (let i = 0; i < 100; i++) for (const f of Object.values(work)) await f();
    const samples = { off: [] as number[], fresh: [] as number[] };
    for (let block = 0; block < 20; block++) {
      for (const who of block % 2 ? (["fresh", "off"] as const) : (["off", "fresh"] as const)) {
        const started = cpuMs();
        for (let i = 0; i < 100; i++) await work[who]();
        samples[who].push((cpuMs() - started) / 100);
      }
    }
    const median = (values: number[]) => [...values].sort((a, b) => a - b)[values.length >> 1]!;
    return {
      off: median(samples.off),
      fresh: median(samples.fresh),
      differences: samples.fresh.map((v, i) => v - samples.off[i]!).sort((a, b) => a - b),
    };
  } finally {
    await database.close();
  }
}

/**
 * A reader of the CPU seconds of the PostgreSQL cluster serving `config`:
 * its postmaster and every process under it (backends, autovacuum, WAL
 * writer), found as the parent of one backend. A constant 0 on SQLite.
 */
async function databaseCpu(config: DatabaseConfig): Promise<() => number> {
  if (config.engine !== "postgres") return () => 0;
  const client = new pg.Client({ connectionString: config.url });
  await client.connect();
  let status: string;
  try {
    const { rows } = await client.query<{ pid: number }>("select pg_backend_pid() as pid");
    // Read while the backend lives: it exits with the connection.
    status = readFileSync(`/proc/${rows[0]!.pid}/status`, "utf8");
  } finally {
    await client.end();
  }
  const postmaster = Number(/^PPid:\s+(\d+)/m.exec(status)?.[1]);
  return () => cpuSeconds(postmaster);
}

async function benchEngine(engine: EngineFactory, dir: string, cleanup: Cleanup) {
  const database = await engine.database("quota");
  await seed(database);
  const dbCpu = await databaseCpu(database);
  const keyPath = join(dir, `${engine.name}.key`);
  writeFileSync(keyPath, formatSigningKeyFile([generateSigningKey()]), { mode: 0o600 });
  const config = validateConfig({
    server_name: "bench.local",
    listen: { host: "127.0.0.1", port: 0 },
    database,
    media_store: { engine: "filesystem", path: join(dir, `media-${engine.name}`) },
    log_level: "silent",
    signing_key_path: keyPath,
    max_upload_size: "2M",
    media_upload_limits: [
      { time_period: "1h", max_size: "100G" },
      { time_period: "1d", max_size: "100G" },
      { time_period: "30d", max_size: "1T" },
    ],
    media_upload_limit_overrides: [
      { user_glob: "@off:bench.local", media_upload_limits: [] },
      { user_glob: "@again:bench.local", media_upload_limits: [] },
    ],
  });
  const app = createApp(config, createLogger("silent"));
  cleanup.add("stop the quota bench server", () => app.stop());
  const base = await app.start();
  const tokens: Record<LegName, string> = { off: "", on: "", fresh: "", again: "" };
  for (const who of LEGS) {
    const userId = await app.accounts.register({ localpart: who, password: "x", admin: false });
    tokens[who] = (await app.accounts.issueToken(userId, null)).accessToken;
  }
  const body = randomBytes(SIZE);
  const upload = async (token: string) => {
    const res = await fetch(`${base}/_matrix/media/v3/upload`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/octet-stream" },
      body,
    });
    if (res.status !== 200) throw new Error(`upload: ${res.status} ${await res.text()}`);
  };
  const leg = async (token: string): Promise<Leg> => {
    const before = { ...counted };
    const dbCpu0 = dbCpu();
    const cpu = process.cpuUsage();
    const started = performance.now();
    for (let i = 0; i < UPLOADS; i++) await upload(token);
    const used = process.cpuUsage(cpu);
    return {
      cpuMs: (used.user + used.system) / 1000 / UPLOADS,
      wallMs: (performance.now() - started) / UPLOADS,
      reserveMs: (counted.reserveMs - before.reserveMs) / UPLOADS,
      dropMs: (counted.dropMs - before.dropMs) / UPLOADS,
      dbCpuMs: ((dbCpu() - dbCpu0) * 1000) / UPLOADS,
    };
  };
  // Warm-up: every path compiled and cached before the first timed round.
  for (let i = 0; i < 3; i++) for (const who of LEGS) await upload(tokens[who]);
  // Statements and commits per upload, each leg on its own (no timing).
  const perUpload = {} as EngineResult["sql"];
  for (const who of LEGS) {
    const before = { ...counted };
    traced?.clear();
    for (let i = 0; i < 5; i++) await upload(tokens[who]);
    if (traced) console.error(`quota: ${engine.name} ${who}, 5 uploads:`, traced);
    if (who === "off" && counted.statements === before.statements) {
      throw new Error(`no statement counted: ${BUILD} does not use this checkout's Kysely`);
    }
    perUpload[who] = {
      statements: (counted.statements - before.statements) / 5,
      begins: (counted.begins - before.begins) / 5,
      commits: (counted.commits - before.commits) / 5,
    };
  }
  const rounds: EngineResult["rounds"] = [];
  const loadBefore = loadavg()[0]!;
  for (let r = 0; r < ROUNDS; r++) {
    const round = {} as Record<LegName, Leg>;
    for (const i of ORDERS[r % ORDERS.length]!) {
      const who = LEGS[i]!;
      round[who] = await leg(tokens[who]);
    }
    rounds.push(round);
    console.error(
      `quota: ${engine.name} round ${r + 1}: per upload CPU / PostgreSQL CPU / wall / reserve / drop ${LEGS.map((w) => `${w} ${[round[w].cpuMs, round[w].dbCpuMs, round[w].wallMs, round[w].reserveMs, round[w].dropMs].map((v) => v.toFixed(2)).join(" / ")} ms`).join(", ")}`,
    );
  }
  const load = [loadBefore, loadavg()[0]!] as const;
  await app.stop();
  return {
    engine: engine.name,
    load,
    rounds,
    sql: perUpload,
    usageQueryMs: await timeUsageQuery(database),
    checkAlone: await timeCheckAlone(database, dbCpu),
    databaseWork: await timeDatabaseWork(database, dbCpu),
  };
}

/** A leg's CPU per upload: mxcd's process and, on PostgreSQL, its cluster's. */
const cpu = (leg: Leg) => leg.cpuMs + leg.dbCpuMs;

function summary(values: readonly number[]) {
  const mean = values.reduce((a, b) => a + b, 0) / values.length;
  return `${times(mean)} (${times(Math.min(...values))}–${times(Math.max(...values))})`;
}

function report(results: readonly EngineResult[]): string[] {
  const median = (values: number[]) => values.sort((a, b) => a - b)[values.length >> 1]!;
  const sqlOf = (r: EngineResult, who: LegName) =>
    `${r.sql[who].statements} / ${r.sql[who].commits} / ${r.sql[who].statements + r.sql[who].begins + r.sql[who].commits}`;
  const phase = (r: EngineResult, who: LegName) =>
    `${median(r.rounds.map((x) => x[who].reserveMs)).toFixed(2)} + ${median(r.rounds.map((x) => x[who].dropMs)).toFixed(2)}`;
  return [
    `${ROUNDS} rounds × ${UPLOADS} uploads of 1 MiB per leg, legs in a Williams order; \`@on\` has 3 windows and ${count(PRIOR)} prior uploads in them, \`@fresh\` the same windows and none, \`@again\` no quota (\`@off\`'s twin). Build: ${BUILD_LABEL}.`,
    "",
    ...markdownTable({
      header: [
        "engine",
        "CPU per upload: off / on / fresh / again",
        "PostgreSQL CPU per upload: off / on / fresh / again",
        "CPU (mxcd + PostgreSQL) fresh/off",
        "CPU (mxcd + PostgreSQL) on/off: mean (min–max)",
        "wall fresh/off",
        "wall on/off: mean (min–max)",
        "statements / commits / round trips per upload: off, on, fresh, again",
        "quota repository ms per upload, check + drop: on, fresh",
        "usage query alone",
        "check alone, median (PostgreSQL CPU per check): on, fresh",
        "load average",
      ],
      numeric: [1, 2, 3, 4, 5, 6, 9],
      rows: results.map((r) => [
        r.engine,
        LEGS.map((w) => median(r.rounds.map((x) => x[w].cpuMs)).toFixed(2))
          .join(" / ")
          .replace(/^(.*)$/, "$1 ms"),
        r.engine === "SQLite"
          ? "(in-process)"
          : LEGS.map((w) => median(r.rounds.map((x) => x[w].dbCpuMs)).toFixed(2))
              .join(" / ")
              .replace(/^(.*)$/, "$1 ms"),
        summary(r.rounds.map((x) => cpu(x.fresh) / cpu(x.off))),
        summary(r.rounds.map((x) => cpu(x.on) / cpu(x.off))),
        summary(r.rounds.map((x) => x.fresh.wallMs / x.off.wallMs)),
        summary(r.rounds.map((x) => x.on.wallMs / x.off.wallMs)),
        LEGS.map((w) => sqlOf(r, w)).join(", "),
        `${phase(r, "on")}, ${phase(r, "fresh")}`,
        `${r.usageQueryMs.toFixed(2)} ms`,
        (["on", "fresh"] as const)
          .map(
            (w) =>
              `${r.checkAlone[w].wallMs.toFixed(2)} ms${r.engine === "SQLite" ? "" : ` (${r.checkAlone[w].dbCpuMs.toFixed(2)} ms)`}`,
          )
          .join(", "),
        `${r.load[0].toFixed(1)} → ${r.load[1].toFixed(1)}`,
      ]),
    }),
    "",
    "Each round's difference to `off` in ms per upload, median (min–max); `again` is `off`'s twin (no quota either): its row is the noise floor. Then the database writes of an upload alone (no bytes, no HTTP; 20 alternating blocks of 100): CPU ms per upload without and with a quota, and their difference, median (min–max).",
    "",
    ...markdownTable({
      header: [
        "engine",
        "CPU − off: fresh",
        "CPU − off: on",
        "CPU − off: again",
        "wall − off: fresh",
        "wall − off: on",
        "wall − off: again",
        "database writes alone: off, fresh",
        "database writes alone: fresh − off",
      ],
      numeric: [],
      rows: results.map((r) => {
        const less = (who: LegName, of: (leg: Leg) => number) =>
          spread(r.rounds.map((x) => of(x[who]) - of(x.off)));
        const work = r.databaseWork;
        return [
          r.engine,
          less("fresh", cpu),
          less("on", cpu),
          less("again", cpu),
          less("fresh", (l) => l.wallMs),
          less("on", (l) => l.wallMs),
          less("again", (l) => l.wallMs),
          `${work.off.toFixed(3)}, ${work.fresh.toFixed(3)} ms`,
          `${work.differences[work.differences.length >> 1]!.toFixed(3)} (${work.differences[0]!.toFixed(3)}–${work.differences.at(-1)!.toFixed(3)}) ms`,
        ];
      }),
    }),
  ];
}

/** Median (min–max) of per-round differences, in ms. */
function spread(values: readonly number[]): string {
  const sorted = [...values].sort((a, b) => a - b);
  const f = (v: number) => (v >= 0 ? `+${v.toFixed(2)}` : v.toFixed(2));
  return `${f(sorted[sorted.length >> 1]!)} (${f(sorted[0]!)} – ${f(sorted.at(-1)!)})`;
}

if (isMainModule(import.meta.url)) {
  await runMain(async (cleanup) => {
    const dir = tempDir(cleanup, "mxcd-quota-bench-");
    countStatements();
    const results: EngineResult[] = [];
    const only = process.env.MXCD_BENCH_QUOTA_ENGINE;
    for (const engine of await standaloneEngines(cleanup, dir)) {
      if (only && engine.name !== only) continue;
      results.push(await benchEngine(engine, dir, cleanup));
    }
    const lines = report(results);
    console.log(lines.join("\n"));
    const file = process.env.MXCD_BENCH_RESULTS ?? join(import.meta.dirname, "RESULTS.md");
    writeSection(file, "## Upload quota", lines);
  });
}
