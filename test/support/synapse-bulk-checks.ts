/**
 * Shared by the import scale and kill tests (test/synapse-import-scale.test.ts,
 * test/synapse-import-kill.test.ts): the bulk fixture in a database of
 * either engine, and the checks on mxcd's database after an import
 * (row counts and id sets, a fingerprint of every media row, feed records,
 * the import job's stored progress). `rowCounts` also serves the import
 * tests on the small fixture (test/synapse-import.test.ts,
 * test/synapse-import-copy.test.ts).
 */
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import pg from "pg";
import type { DatabaseConfig } from "../../src/config/config-schema.js";
import { createDatabase, type Engine } from "../../src/db/database.js";
import {
  IMPORT_KINDS,
  type ImportCounts,
  type ImportKind,
  type ImportTally,
} from "../../src/importer/import-report.js";
import type { SynapseImportProgress } from "../../src/importer/synapse-import-job.js";
import type { SynapseDatabaseLocation } from "../../src/importer/synapse-source.js";
import { freshDatabaseConfig } from "./databases.js";
import { type BulkSynapseFixture, writeBulkSynapseFixture } from "./synapse-bulk-fixture.js";

/** The tests serve Synapse's own folder: the S3 pass of `npm test` adds nothing. */
export const skip =
  process.env.MXCD_TEST_MEDIA_STORE === "s3"
    ? "runs in the filesystem pass only (it imports and serves Synapse's own folder, whatever the store under test)"
    : false;
export const MEDIA_TABLES = [
  "local_media_repository",
  "local_media_repository_thumbnails",
  "remote_media_cache",
  "remote_media_cache_thumbnails",
] as const;

export interface Scale {
  readonly fixture: BulkSynapseFixture;
  readonly location: SynapseDatabaseLocation;
}

/** One fixture per test file (each file is its own process) and row count. */
const made = new Map<number, Promise<{ fixture: BulkSynapseFixture; locations: Locations }>>();
type Locations = Partial<Record<Engine, SynapseDatabaseLocation>>;

/**
 * The bulk fixture in `engine`'s database (on PostgreSQL read through a
 * SELECT-only role). The media store, the costly part, is written once per
 * file, with its rows in a SQLite and (when the test run has one) a
 * PostgreSQL database, so both engines' suites share it.
 */
export async function bulkFixture(engine: Engine, rows: number): Promise<Scale> {
  let promise = made.get(rows);
  if (!promise) {
    promise = makeBulkFixture(rows);
    made.set(rows, promise);
  }
  const { fixture, locations } = await promise;
  const location = locations[engine];
  if (!location) throw new Error(`no ${engine} source database`);
  return { fixture, location };
}

async function makeBulkFixture(rows: number) {
  const dir = mkdtempSync(join(tmpdir(), "mxcd-synapse-bulk-"));
  const locations: Locations = { sqlite: { sqlite: join(dir, "homeserver.db") } };
  let postgresUrl: string | undefined;
  if (process.env.MXCD_TEST_POSTGRES_URL) {
    const config = await freshDatabaseConfig("postgres");
    if (config.engine !== "postgres") throw new Error("unreachable");
    postgresUrl = config.url;
  }
  const fixture = await writeBulkSynapseFixture(
    dir,
    [locations.sqlite!, ...(postgresUrl ? [{ postgres: postgresUrl }] : [])],
    rows,
  );
  if (postgresUrl) {
    const reader = `synapse_reader_${randomBytes(4).toString("hex")}`;
    const client = new pg.Client({ connectionString: postgresUrl });
    await client.connect();
    try {
      await client.query(`CREATE ROLE ${reader} LOGIN`);
      await client.query(`GRANT SELECT ON ALL TABLES IN SCHEMA public TO ${reader}`);
    } finally {
      await client.end();
    }
    const url = new URL(postgresUrl);
    url.username = reader;
    locations.postgres = { postgres: url.toString() };
  }
  return { fixture, locations };
}

/** [imported, present, skipped, missing] per kind. */
export function countsOf(counts: Record<ImportKind, ImportCounts>): Record<ImportKind, number[]> {
  const row = (c: ImportCounts) => [c.imported, c.present, c.skipped, c.missing];
  return Object.fromEntries(IMPORT_KINDS.map((k) => [k, row(counts[k])])) as Record<
    ImportKind,
    number[]
  >;
}

/** The expected counts of a pass that finds every imported row already there. */
export function rerunCounts(
  expected: Record<ImportKind, ImportCounts>,
): Record<ImportKind, number[]> {
  return Object.fromEntries(
    IMPORT_KINDS.map((k) => {
      const c = expected[k];
      return [k, [0, c.imported, c.skipped, c.missing]];
    }),
  ) as Record<ImportKind, number[]>;
}

/** The report table of the CLI's standard output, as countsOf gives it. */
export function parseReport(stdout: string): Record<string, number[]> {
  const out: Record<string, number[]> = {};
  for (const m of stdout.matchAll(/^(\w+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)$/gm)) {
    out[m[1]!] = [m[2], m[3], m[4], m[5]].map(Number);
  }
  return out;
}

export async function withDatabase<T>(
  config: DatabaseConfig,
  work: (db: ReturnType<typeof createDatabase>) => Promise<T>,
): Promise<T> {
  const database = createDatabase(config);
  try {
    return await work(database);
  } finally {
    await database.close();
  }
}

/** Rows in mxcd's four media tables. */
export function rowCounts(config: DatabaseConfig): Promise<number[]> {
  return withDatabase(config, async (database) => {
    const out: number[] = [];
    for (const table of MEDIA_TABLES) {
      const row = await database.db
        .selectFrom(table)
        .select((eb) => eb.fn.countAll<number>().as("n"))
        .executeTakeFirstOrThrow();
      out.push(Number(row.n));
    }
    return out;
  });
}

/**
 * Every imported row is in mxcd exactly once: the local and remote id lists
 * (sorted, with repeats kept) equal the fixture's, and every thumbnail key
 * occurs once.
 */
export async function assertExactlyTheFixture(config: DatabaseConfig, scale: Scale): Promise<void> {
  const { fixture } = scale;
  const expectedLocal: string[] = [];
  const expectedRemote: string[] = [];
  for (let i = 0; i < fixture.localCount; i++) {
    const m = fixture.local(i);
    if (m.length !== null && m.hasFile) expectedLocal.push(m.mediaId);
  }
  for (let j = 0; j < fixture.remoteCount; j++) {
    const r = fixture.remote(j);
    if (r.hasFile) expectedRemote.push(`${r.origin}/${r.mediaId}`);
  }
  const byCodePoint = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
  await withDatabase(config, async (database) => {
    const local = (
      await database.db.selectFrom("local_media_repository").select("media_id").execute()
    )
      .map((r) => r.media_id)
      .sort(byCodePoint);
    assert.deepEqual(local, expectedLocal.sort(byCodePoint), "local media ids");
    const remote = (
      await database.db
        .selectFrom("remote_media_cache")
        .select(["media_origin", "media_id"])
        .execute()
    )
      .map((r) => `${r.media_origin}/${r.media_id}`)
      .sort(byCodePoint);
    assert.deepEqual(remote, expectedRemote.sort(byCodePoint), "remote media ids");
  });
  // Thumbnails: their unique keys make a repeat impossible, so the counts say it all.
  assert.deepEqual(await rowCounts(config), [...fixture.importedRows]);
}

/** A hash of every row of mxcd's media tables, in key order: equal means unchanged. */
export function mediaFingerprint(config: DatabaseConfig): Promise<string> {
  return withDatabase(config, async (database) => {
    const hash = createHash("sha256");
    for (const table of MEDIA_TABLES) {
      const rows = await database.db.selectFrom(table).selectAll().execute();
      const lines = rows.map((r) =>
        JSON.stringify(r, (_k, v) => (typeof v === "bigint" ? String(v) : v)),
      );
      hash.update(`${table}\n${lines.sort().join("\n")}\n`);
    }
    return hash.digest("hex");
  });
}

/** Feed records per item, as "origin/media_id" (origin "" for local) → records. */
export function feedRecords(config: DatabaseConfig): Promise<Map<string, number>> {
  return withDatabase(config, async (database) => {
    const rows = await database.db
      .selectFrom("quarantined_media_changes")
      .select(["origin", "media_id", "quarantined"])
      .execute();
    const out = new Map<string, number>();
    for (const r of rows) {
      assert.ok(r.quarantined === true || r.quarantined === 1, "only quarantine records");
      const key = `${r.origin ?? ""}/${r.media_id}`;
      out.set(key, (out.get(key) ?? 0) + 1);
    }
    return out;
  });
}

/** One record per quarantined item of the fixture, and no other. */
export function expectedFeed(fixture: BulkSynapseFixture): Map<string, number> {
  return new Map(fixture.quarantined.map((q) => [`${q.origin ?? ""}/${q.mediaId}`, 1]));
}

/**
 * The import job's stored row; undefined before its first batch, or while
 * the CLI has not yet created mxcd's tables.
 */
export async function importJob(database: ReturnType<typeof createDatabase>) {
  const row = await database.db
    .selectFrom("background_jobs")
    .select(["status", "processed", "progress"])
    .where("name", "=", "synapse-import")
    .executeTakeFirst()
    .catch(() => undefined);
  if (!row) return undefined;
  return {
    status: row.status,
    processed: Number(row.processed),
    progress: JSON.parse(row.progress) as SynapseImportProgress,
  };
}

export function importedOf(tally: ImportTally): number[] {
  const n = (kind: ImportKind) => tally.counts[kind]?.imported ?? 0;
  // In MEDIA_TABLES' order; URL-preview media lives in the local tables.
  return [
    n("local") + n("url_cache"),
    n("local_thumbnail") + n("url_cache_thumbnail"),
    n("remote"),
    n("remote_thumbnail"),
  ];
}

/**
 * Polls `condition` until it holds; fails if `child` exits first, or after
 * a bound generous for a loaded machine (not a timing).
 */
export async function waitFor(
  condition: () => Promise<boolean>,
  child?: ChildProcess,
): Promise<void> {
  const deadline = Date.now() + 120_000;
  while (!(await condition())) {
    if (child && child.exitCode !== null) throw new Error(`exited (${child.exitCode}) first`);
    if (Date.now() > deadline) throw new Error("condition not reached");
    await sleep(10);
  }
}
