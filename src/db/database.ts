/**
 * The database seam: `createDatabase` is the one place that picks SQLite or
 * PostgreSQL. Everything above it sees a `Database`: a Kysely instance over
 * one shared schema, the engine name (for the rare dialect-specific query)
 * and a `close()`.
 */
import type { Kysely, Transaction } from "kysely";
import type { DatabaseConfig } from "../config/config-schema.js";
import { createPostgresDatabase } from "./postgres/postgres-database.js";
import type { DatabaseSchema } from "./schema.js";
import { createSqliteDatabase } from "./sqlite/sqlite-database.js";

export type Engine = "sqlite" | "postgres";
export type Db = Kysely<DatabaseSchema>;
export type Tx = Transaction<DatabaseSchema>;

export interface Database {
  readonly engine: Engine;
  readonly db: Db;
  /** Runs `work` in one transaction; commits when it resolves, rolls back when it throws. */
  transaction<T>(work: (tx: Tx) => Promise<T>): Promise<T>;
  /** Closes every connection; idempotent. */
  close(): Promise<void>;
}

/** Opens the configured database (migrations are run separately, see migrate.ts). */
export function createDatabase(config: DatabaseConfig): Database {
  switch (config.engine) {
    case "sqlite":
      return createSqliteDatabase(config);
    case "postgres":
      return createPostgresDatabase(config);
    default: {
      const unknown: never = config;
      throw new Error(`unknown database engine ${JSON.stringify(unknown)}`);
    }
  }
}
