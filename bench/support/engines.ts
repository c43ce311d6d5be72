/**
 * Database engines for the in-process benchmarks: a factory per engine that
 * makes a fresh, empty database for each use — a SQLite file in a temp
 * folder, or a new database in the run's throwaway PostgreSQL cluster.
 */
import { join } from "node:path";
import type { DatabaseConfig } from "../../src/config/config-schema.js";
import { findPostgresBin } from "../../test/support/postgres-cluster.js";
import type { Cleanup } from "./cleanup.js";
import { type BenchPostgres, startBenchPostgres } from "./postgres.js";

/** Makes empty databases of one engine. */
export interface EngineFactory {
  /** `SQLite` or `PostgreSQL`, as the tables show it. */
  readonly name: string;
  /** A new empty database; `label` (letters, digits, `_`) tells them apart. */
  database(label: string): Promise<DatabaseConfig>;
}

/** SQLite files in `dir`. */
export function sqliteEngine(dir: string): EngineFactory {
  return {
    name: "SQLite",
    database: async (label) => ({ engine: "sqlite", path: join(dir, `${label}.sqlite`) }),
  };
}

/** Databases in a running cluster; `maxConnections` is each pool's size. */
export function postgresEngine(postgres: BenchPostgres, maxConnections = 5): EngineFactory {
  let created = 0;
  return {
    name: "PostgreSQL",
    database: async (label) => ({
      engine: "postgres",
      url: await postgres.createDatabase(`${label}_${++created}`),
      max_connections: maxConnections,
    }),
  };
}

/**
 * For a bench run on its own: SQLite, plus PostgreSQL on a throwaway cluster
 * when its binaries are installed (`cleanup` stops it).
 */
export async function standaloneEngines(cleanup: Cleanup, dir: string): Promise<EngineFactory[]> {
  const engines = [sqliteEngine(dir)];
  if (findPostgresBin()) engines.push(postgresEngine(await startBenchPostgres(cleanup)));
  else console.error("PostgreSQL binaries not found: PostgreSQL skipped");
  return engines;
}
