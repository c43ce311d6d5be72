/**
 * Wraps a Kysely instance as a `Database`. Its own module so that the
 * backends (sqlite/, postgres/) need not import the factory in database.ts,
 * which imports them (no import cycle).
 */
import { transactionWithCallbacks } from "./after-commit.js";
import type { Database, Db, Engine } from "./database.js";

/** Wraps a Kysely instance as a `Database`. */
export function wrapKysely(engine: Engine, db: Db): Database {
  let closed = false;
  return {
    engine,
    db,
    // Runs afterCommit callbacks (after-commit.ts) once the commit is done.
    transaction: (work) => transactionWithCallbacks(db, work),
    async close() {
      if (closed) return;
      closed = true;
      await db.destroy();
    },
  };
}
