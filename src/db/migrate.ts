/**
 * Runs pending schema migrations with Kysely's Migrator, which holds a lock
 * (an advisory lock on PostgreSQL) so several processes starting together
 * migrate once. `mxcd serve` and `mxcd migrate` both call this.
 */
import { type Kysely, type Migration, type MigrationResult, Migrator } from "kysely";
import type { Database } from "./database.js";
import { MIGRATIONS } from "./migrations/index.js";
import { migrationContext } from "./migrations/migration.js";

export interface MigrationReport {
  /** Names of the migrations this call applied, in order. */
  readonly applied: readonly string[];
}

export async function runMigrations(database: Database): Promise<MigrationReport> {
  const context = migrationContext(database.engine);
  const migrations: Record<string, Migration> = {};
  for (const migration of MIGRATIONS) {
    migrations[migration.name] = { up: (db: Kysely<unknown>) => migration.up(db, context) };
  }
  const migrator = new Migrator({
    db: database.db,
    provider: { getMigrations: async () => migrations },
    migrationTableName: "mxcd_migrations",
    migrationLockTableName: "mxcd_migrations_lock",
  });
  const { error, results } = await migrator.migrateToLatest();
  if (error) {
    const failed = results?.find((r: MigrationResult) => r.status === "Error");
    throw new Error(`migration ${failed?.migrationName ?? "?"} failed: ${String(error)}`, {
      cause: error,
    });
  }
  return { applied: (results ?? []).map((r) => r.migrationName) };
}
