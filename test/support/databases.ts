/**
 * Runs a suite once per database engine: `forEachEngine((engine) => ...)`.
 * SQLite always runs. PostgreSQL runs on the cluster the test runner started
 * (MXCD_TEST_POSTGRES_URL); without one the suite is skipped with a loud
 * message, and under CI=true that is a failure, not a skip.
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync } from "node:fs";
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
  for (const engine of ENGINES) {
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
