/**
 * SQLite through better-sqlite3: WAL journal (readers never wait for the
 * writer), a busy timeout so a second process (the CLI beside a running
 * server) waits instead of failing, foreign keys on, and a cache of prepared
 * statements so each distinct query is compiled once.
 */
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import SqliteDriver from "better-sqlite3";
import { Kysely, SqliteDialect } from "kysely";
import type { Database } from "../database.js";
import type { DatabaseSchema } from "../schema.js";
import { wrapKysely } from "../wrap-kysely.js";
import { SqliteBooleanPlugin } from "./sqlite-boolean-plugin.js";

export interface SqliteConfig {
  path: string;
}

const STATEMENT_CACHE_SIZE = 500;

export function createSqliteDatabase(config: SqliteConfig): Database {
  if (config.path !== ":memory:") mkdirSync(dirname(config.path), { recursive: true });
  const sqlite = new SqliteDriver(config.path);
  sqlite.pragma("journal_mode = WAL");
  sqlite.pragma("synchronous = NORMAL");
  sqlite.pragma("busy_timeout = 5000");
  sqlite.pragma("foreign_keys = ON");
  const db = new Kysely<DatabaseSchema>({
    dialect: new SqliteDialect({ database: withStatementCache(sqlite) }),
    plugins: [new SqliteBooleanPlugin()],
  });
  return wrapKysely("sqlite", db);
}

/**
 * Kysely prepares every query it runs; better-sqlite3 statements can be
 * reused, so keep the most recent ones keyed by SQL text.
 */
function withStatementCache(sqlite: SqliteDriver.Database): SqliteDriver.Database {
  const cache = new Map<string, SqliteDriver.Statement>();
  const prepare = sqlite.prepare.bind(sqlite);
  return new Proxy(sqlite, {
    get(target, property, receiver) {
      if (property !== "prepare") return Reflect.get(target, property, receiver);
      return (source: string) => {
        let statement = cache.get(source);
        if (statement) {
          cache.delete(source);
        } else {
          statement = prepare(source);
          if (cache.size >= STATEMENT_CACHE_SIZE) cache.delete(cache.keys().next().value!);
        }
        cache.set(source, statement);
        return statement;
      };
    },
  });
}
