/**
 * One runner per job across processes. On PostgreSQL each batch transaction
 * first tries a transaction-scoped advisory lock whose key is fixed per job
 * name; a process that does not get it skips the batch and retries later,
 * and the lock is released by the commit or rollback, never leaked by a
 * crashed process. SQLite has a single writer: the batch's first statement
 * takes the write lock (JobRepository.claim), which serialises batches of
 * every process using the file.
 */
import { createHash } from "node:crypto";
import { sql } from "kysely";
import type { Engine, Tx } from "../db/database.js";

/** The advisory lock key of a job: the first 8 bytes of SHA-256("mxcd-job:" + name), signed. */
export function jobLockKey(name: string): string {
  return createHash("sha256").update(`mxcd-job:${name}`).digest().readBigInt64BE(0).toString();
}

/** Takes the job's lock for the rest of `tx`; false when another transaction holds it. */
export async function tryJobLock(tx: Tx, engine: Engine, name: string): Promise<boolean> {
  if (engine !== "postgres") return true;
  const { rows } = await sql<{ locked: boolean }>`
    select pg_try_advisory_xact_lock(cast(${jobLockKey(name)} as bigint)) as locked
  `.execute(tx);
  return rows[0]?.locked === true;
}
