/**
 * PostgreSQL through a pg connection pool. BIGINT (int8) columns hold
 * millisecond timestamps and sizes, all below 2^53, so they are parsed as
 * numbers instead of pg's default strings; this is set on this pool's own
 * type parser, never on pg's global one.
 */
import { Kysely, PostgresDialect } from "kysely";
import pg from "pg";
import type { Database } from "../database.js";
import type { DatabaseSchema } from "../schema.js";
import { wrapKysely } from "../wrap-kysely.js";

export interface PostgresConfig {
  url: string;
  max_connections: number;
}

const INT8_OID = 20;

/** Type parsers for this pool: int8 → number, everything else as pg does. */
const types = {
  getTypeParser(oid: number, format?: "text" | "binary") {
    if (oid === INT8_OID && format !== "binary") return (value: string) => Number(value);
    return pg.types.getTypeParser(oid, format as "text");
  },
};

export function createPostgresDatabase(config: PostgresConfig): Database {
  const pool = new pg.Pool({
    connectionString: config.url,
    max: config.max_connections,
    types,
  });
  // An idle client losing its connection emits on the pool; without a
  // listener that would crash the process. The next query reconnects.
  pool.on("error", () => {});
  const db = new Kysely<DatabaseSchema>({ dialect: new PostgresDialect({ pool }) });
  return wrapKysely("postgres", db);
}
