/**
 * Wraps a Kysely instance as a `Database`. Its own module so that the
 * backends (sqlite/, postgres/) need not import the factory in database.ts,
 * which imports them (no import cycle).
 */
import type { Database, Db, Engine } from "./database.js";

/** Wraps a Kysely instance as a `Database`. */
export function wrapKysely(engine: Engine, db: Db): Database {
  let closed = false;
  return {
    engine,
    db,
    transaction: (work) => db.transaction().execute(work),
    async close() {
      if (closed) return;
      closed = true;
      await db.destroy();
    },
  };
}
