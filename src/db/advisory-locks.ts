/**
 * The advisory-lock seam: "only one process does this piece of work at a
 * time" (single flight of remote fetches and thumbnail generation,
 * docs/deployment.md). `createAdvisoryLocks` picks the backend: PostgreSQL
 * session advisory locks, or in-process locks for SQLite (one process).
 *
 * Design note. A lock here saves duplicate work; it never guards
 * correctness alone. The work under it must be safe to do twice (atomic,
 * idempotent blob writes; inserts that ignore or reject duplicates), because
 * a lock can vanish while its holder still works: on PostgreSQL it lives in
 * a session, and a broken connection ends the session. In return a dead
 * holder can never block anyone: when a process dies, its socket closes,
 * PostgreSQL ends the session, and every lock it held is released. (Background
 * jobs use transaction-scoped locks instead: see src/jobs/job-lock.ts.)
 */
import type { DatabaseConfig } from "../config/config-schema.js";
import type { Logger } from "../logging/logger.js";
import { InProcessAdvisoryLocks } from "./in-process-advisory-locks.js";
import { PostgresAdvisoryLocks } from "./postgres/postgres-advisory-locks.js";

/** A held lock. */
export interface Lease {
  /** Gives the lock back; never throws. Call it exactly once. */
  release(): Promise<void>;
}

export interface AdvisoryLocks {
  /**
   * Takes the lock named `name` if no one — in this process or another —
   * holds it; resolves to undefined at once when someone does (never waits).
   */
  tryAcquire(name: string): Promise<Lease | undefined>;
  /** Connects (PostgreSQL). Idempotent. */
  start(): Promise<void>;
  /** Disconnects, which releases every lock still held. Idempotent. */
  stop(): Promise<void>;
}

/** The locks for the configured database. Cheap: connects in `start()`. */
export function createAdvisoryLocks(config: DatabaseConfig, logger: Logger): AdvisoryLocks {
  switch (config.engine) {
    case "sqlite":
      return new InProcessAdvisoryLocks();
    case "postgres":
      return new PostgresAdvisoryLocks(config.url, logger);
    default: {
      const unknown: never = config;
      throw new Error(`unknown database engine ${JSON.stringify(unknown)}`);
    }
  }
}
