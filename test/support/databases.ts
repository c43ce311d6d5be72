/**
 * Runs a suite once per database engine: `forEachEngine((engine) => ...)`.
 * SQLite always runs. PostgreSQL runs on the cluster the test runner started
 * (MXCD_TEST_POSTGRES_URL); without one the suite is skipped with a loud
 * message, and under CI=true that is a failure, not a skip.
 *
 * MXCD_TEST_ENGINES (set by scripts/run-tests.ts for the S3 pass only) names
 * the engines `forEachEngine` runs; the others are skipped by name. Suites
 * written for one engine (`describe("... [postgres]")`) are not affected.
 *
 * Test servers start on a database that already has the schema: a copy of a
 * template the test runner migrated once (`prepareDatabaseTemplates`), so
 * each server does not run every migration again. Without the runner the
 * server migrates a fresh database itself, as before.
 */
import { randomBytes } from "node:crypto";
import { copyFileSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe } from "node:test";
import pg from "pg";
import type { DatabaseConfig } from "../../src/config/config-schema.js";
import type { Engine } from "../../src/db/database.js";
import { markSuiteRan } from "./run-markers.js";

export const ENGINES: readonly Engine[] = ["sqlite", "postgres"];

const postgresUrl = process.env.MXCD_TEST_POSTGRES_URL;

/** Defines `describe("<name> [engine]")` for each engine. */
export function forEachEngine(name: string, suite: (engine: Engine) => void): void {
  const chosen = process.env.MXCD_TEST_ENGINES?.split(",").map((e) => e.trim());
  for (const engine of ENGINES) {
    if (chosen && !chosen.includes(engine)) {
      const reason = `this pass runs ${chosen.join(", ")} only (MXCD_TEST_ENGINES); ${engine} ran it in the filesystem pass`;
      describe(`${name} [${engine}]`, { skip: reason }, () => {});
      continue;
    }
    if (engine === "postgres" && !postgresUrl) {
      const reason = "PostgreSQL not available: set up by `npm test` (scripts/run-tests.ts)";
      if (process.env.CI === "true") {
        describe(`${name} [postgres]`, () => {
          throw new Error(`${reason}; CI requires the PostgreSQL suites to run`);
        });
      } else {
        describe(`${name} [postgres]`, { skip: `!!! SKIPPED: ${reason}` }, () => {});
      }
      continue;
    }
    describe(`${name} [${engine}]`, () => suite(engine));
  }
}

/** A fresh, empty database of the engine: a new SQLite file or a new PostgreSQL database. */
export async function freshDatabaseConfig(engine: Engine): Promise<DatabaseConfig> {
  if (engine === "sqlite") {
    const dir = mkdtempSync(join(tmpdir(), "mxcd-sqlite-"));
    return { engine: "sqlite", path: join(dir, "mxcd.sqlite") };
  }
  if (!postgresUrl) throw new Error("MXCD_TEST_POSTGRES_URL is not set");
  const name = `mxcd_test_${randomBytes(6).toString("hex")}`;
  const client = new pg.Client({ connectionString: postgresUrl });
  await client.connect();
  try {
    await client.query(`CREATE DATABASE ${name}`);
  } finally {
    await client.end();
  }
  markSuiteRan("postgres", name);
  const url = new URL(postgresUrl);
  url.pathname = `/${name}`;
  return { engine: "postgres", url: url.toString(), max_connections: 5 };
}

/** Template names the test runner passes to the test processes. */
const SQLITE_TEMPLATE = "MXCD_TEST_SQLITE_TEMPLATE";
const POSTGRES_TEMPLATE = "MXCD_TEST_POSTGRES_TEMPLATE";

/**
 * Migrates one database of each engine (a SQLite file under `dir`, a
 * PostgreSQL database on `postgresUrl` when given) with the current
 * migrations, and returns the environment that makes `migratedDatabaseConfig`
 * copy them. Called once per `npm test` by scripts/run-tests.ts.
 */
export async function prepareDatabaseTemplates(
  dir: string,
  postgresUrl: string | undefined,
): Promise<Record<string, string>> {
  const { createDatabase } = await import("../../src/db/database.js");
  const { runMigrations } = await import("../../src/db/migrate.js");
  const migrate = async (config: DatabaseConfig) => {
    const database = createDatabase(config);
    try {
      await runMigrations(database);
    } finally {
      await database.close();
    }
  };
  const env: Record<string, string> = {};
  const sqlitePath = join(dir, "template.sqlite");
  await migrate({ engine: "sqlite", path: sqlitePath });
  env[SQLITE_TEMPLATE] = sqlitePath;
  if (postgresUrl) {
    const name = `mxcd_template_${randomBytes(4).toString("hex")}`;
    await adminQuery(postgresUrl, `CREATE DATABASE ${name}`);
    const url = new URL(postgresUrl);
    url.pathname = `/${name}`;
    await migrate({ engine: "postgres", url: url.toString(), max_connections: 1 });
    env[POSTGRES_TEMPLATE] = name;
  }
  return env;
}

/**
 * A database of the engine with the current schema and no rows: a copy of
 * the runner's template (see `prepareDatabaseTemplates`), or, without one, a
 * fresh empty database that the server migrates when it starts.
 */
export async function migratedDatabaseConfig(engine: Engine): Promise<DatabaseConfig> {
  const template =
    engine === "sqlite" ? process.env[SQLITE_TEMPLATE] : process.env[POSTGRES_TEMPLATE];
  if (!template) return freshDatabaseConfig(engine);
  if (engine === "sqlite") {
    const path = join(mkdtempSync(join(tmpdir(), "mxcd-sqlite-")), "mxcd.sqlite");
    copyFileSync(template, path);
    return { engine: "sqlite", path };
  }
  if (!postgresUrl) throw new Error("MXCD_TEST_POSTGRES_URL is not set");
  const name = `mxcd_test_${randomBytes(6).toString("hex")}`;
  await adminQuery(postgresUrl, `CREATE DATABASE ${name} TEMPLATE ${template}`);
  markSuiteRan("postgres", name);
  const url = new URL(postgresUrl);
  url.pathname = `/${name}`;
  return { engine: "postgres", url: url.toString(), max_connections: 5 };
}

async function adminQuery(url: string, sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}
