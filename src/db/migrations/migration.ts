/**
 * One set of migrations serves both engines. The few column types that differ
 * are handed to each migration in its context, so a migration never branches
 * on the engine itself for a table or a column. The exceptions are objects
 * written in each engine's own dialect (0016's PostgreSQL function, 0019's
 * triggers): the migration reads `context.engine`. Migrations change schema
 * only: data backfills are background jobs (DESIGN.md, "Background jobs") —
 * but for 0019's upload totals, which must be whole the moment its triggers
 * start and are summed in the triggers' own transaction.
 */
import type { ColumnDefinitionBuilder, Kysely } from "kysely";
import type { Engine } from "../database.js";

export interface MigrationContext {
  readonly engine: Engine;
  /** A boolean column: `boolean` on PostgreSQL, `integer` (0/1) on SQLite. */
  readonly flag: "boolean" | "integer";
  /** Makes an `integer` column an auto-incrementing primary key on either engine. */
  readonly autoId: (column: ColumnDefinitionBuilder) => ColumnDefinitionBuilder;
}

export interface SchemaMigration {
  /** Sorts the migrations; never renamed once released. */
  readonly name: string;
  up(db: Kysely<unknown>, context: MigrationContext): Promise<void>;
}

export function migrationContext(engine: Engine): MigrationContext {
  return {
    engine,
    flag: engine === "postgres" ? "boolean" : "integer",
    autoId: (c) =>
      engine === "postgres" ? c.primaryKey().generatedByDefaultAsIdentity() : c.primaryKey(),
  };
}
