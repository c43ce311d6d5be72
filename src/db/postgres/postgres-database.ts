/**
 * PostgreSQL through a pg connection pool. BIGINT (int8) columns hold
 * millisecond timestamps and sizes, all below 2^53, so they are parsed as
 * numbers instead of pg's default strings; this is set on this pool's own
 * type parser, never on pg's global one.
 *
 * pg itself is loaded when the pool first connects (`loadPg`), so a server
 * on SQLite never loads it (memory at rest, test/memory-at-rest.test.ts).
 */
import { Kysely, PostgresDialect } from "kysely";
import type pg from "pg";
import type { Database } from "../database.js";
import type { DatabaseSchema } from "../schema.js";
import { wrapKysely } from "../wrap-kysely.js";

export interface PostgresConfig {
  url: string;
  max_connections: number;
}

const INT8_OID = 20;

/** pg, loaded on first use (once: the module cache keeps it). */
export async function loadPg(): Promise<typeof pg> {
  return (await import("pg")).default;
}

/** Type parsers for a pool: int8 → number, everything else as pg does. */
function typesOf(driver: typeof pg) {
  return {
    getTypeParser(oid: number, format?: "text" | "binary") {
      if (oid === INT8_OID && format !== "binary") return (value: string) => Number(value);
      return driver.types.getTypeParser(oid, format as "text");
    },
  };
}

export function createPostgresDatabase(config: PostgresConfig): Database {
  // Kysely calls this once, at the first query.
  const pool = async () => {
    const driver = await loadPg();
    const created = new driver.Pool({
      connectionString: config.url,
      max: config.max_connections,
      types: typesOf(driver),
    });
    // An idle client losing its connection emits on the pool; without a
    // listener that would crash the process. The next query reconnects.
    created.on("error", () => {});
    return created;
  };
  const db = new Kysely<DatabaseSchema>({ dialect: new PostgresDialect({ pool }) });
  return wrapKysely("postgres", db);
}
