/**
 * Persisted state of background jobs (`background_jobs`, docs/jobs.md).
 * `claim` and `saveBatch` take the batch's transaction: the runner reads a
 * job's progress and writes the new progress in the same transaction as the
 * batch's work, so the two can never disagree.
 */
import { type Selectable, sql } from "kysely";
import type { Database, Db } from "../db/database.js";
import type { BackgroundJobsTable } from "../db/schema.js";

/** `pending`: no batch committed yet; `running`: started, not finished; `done`: finished for good. */
export type JobStatus = "pending" | "running" | "done";

/** One job's state as stored; `progress` is the job's own parsed JSON. */
export interface JobState {
  readonly name: string;
  readonly status: JobStatus;
  readonly progress: unknown;
  readonly processed: number;
  readonly total: number | null;
  readonly durationMs: number;
  readonly startedTs: number | null;
  readonly updatedTs: number;
  readonly completedTs: number | null;
  readonly lastError: string | null;
  /**
   * A recurring job (never `done`; set by JobRunner.states for the jobs it
   * runs): not an "update in progress" for Synapse's background-updates API.
   */
  readonly recurring?: boolean;
}

/** What one committed batch changes. */
export interface BatchRecord {
  readonly progress: unknown;
  /** Items this batch processed (added to the running count). */
  readonly processed: number;
  readonly done: boolean;
  /** Time the batch took, added to `duration_ms`. */
  readonly durationMs: number;
  readonly now: number;
}

/** Reads and writes `background_jobs`; knows nothing of what the jobs do. */
export class JobRepository {
  constructor(private readonly database: Database) {}

  /** Creates the rows of jobs that have none yet (status pending); existing rows are untouched. */
  async ensure(jobs: readonly { name: string; progress: unknown }[], now: number): Promise<void> {
    if (jobs.length === 0) return;
    // Insert only what is missing: an INSERT that meets an existing row which
    // another process's batch has locked would wait for that batch.
    const existing = await this.database.db
      .selectFrom("background_jobs")
      .select("name")
      .where(
        "name",
        "in",
        jobs.map((j) => j.name),
      )
      .execute();
    const known = new Set(existing.map((r) => r.name));
    for (const job of jobs.filter((j) => !known.has(j.name))) {
      await this.database.db
        .insertInto("background_jobs")
        .values({
          name: job.name,
          status: "pending",
          progress: JSON.stringify(job.progress),
          updated_ts: now,
        })
        .onConflict((oc) => oc.column("name").doNothing())
        .execute();
    }
  }

  /** Every stored job, by name. */
  async list(): Promise<JobState[]> {
    const rows = await this.database.db
      .selectFrom("background_jobs")
      .selectAll()
      .orderBy("name")
      .execute();
    return rows.map(toState);
  }

  /** One stored job's state, read without any lock (e.g. before a batch's `prepare`). */
  async get(name: string): Promise<JobState | undefined> {
    const row = await this.database.db
      .selectFrom("background_jobs")
      .selectAll()
      .where("name", "=", name)
      .executeTakeFirst();
    return row && toState(row);
  }

  /**
   * Reads a job's state for a batch, starting with a no-op write to its row:
   * on SQLite that takes the database's write lock before anything is read
   * (so the read is current and a second process waits its turn instead of
   * failing to upgrade a stale read); on PostgreSQL it locks the row.
   */
  async claim(tx: Db, name: string): Promise<JobState | undefined> {
    const row = await tx
      .updateTable("background_jobs")
      .set((eb) => ({ updated_ts: eb.ref("updated_ts") }))
      .where("name", "=", name)
      .returningAll()
      .executeTakeFirst();
    return row && toState(row);
  }

  /** Saves a batch's outcome in the batch's transaction; returns the new state. */
  async saveBatch(tx: Db, name: string, batch: BatchRecord): Promise<JobState> {
    const row = await tx
      .updateTable("background_jobs")
      .set((eb) => ({
        status: batch.done ? "done" : "running",
        progress: JSON.stringify(batch.progress),
        processed: eb("processed", "+", batch.processed),
        // A finished job's total is what it really processed (the estimate may be off).
        total: batch.done ? eb("processed", "+", batch.processed) : eb.ref("total"),
        duration_ms: eb("duration_ms", "+", Math.round(batch.durationMs)),
        started_ts: eb.fn.coalesce("started_ts", sql.lit(batch.now)),
        updated_ts: batch.now,
        completed_ts: batch.done ? batch.now : null,
      }))
      .where("name", "=", name)
      .returningAll()
      .executeTakeFirstOrThrow();
    return toState(row);
  }

  /**
   * Makes a finished job run again from `progress` (a new pass, e.g. `mxcd
   * import synapse` re-run after the source grew); an unfinished job is left
   * alone. Counts and times start afresh.
   */
  async restart(name: string, progress: unknown, now: number): Promise<void> {
    await this.database.db
      .updateTable("background_jobs")
      .set({
        status: "pending",
        progress: JSON.stringify(progress),
        processed: 0,
        total: null,
        duration_ms: 0,
        started_ts: null,
        updated_ts: now,
        completed_ts: null,
        last_error: null,
      })
      .where("name", "=", name)
      .where("status", "=", "done")
      .execute();
  }

  /** Records a failed batch (whose own transaction rolled back). */
  async recordError(name: string, message: string, now: number): Promise<void> {
    await this.database.db
      .updateTable("background_jobs")
      .set({ last_error: message, updated_ts: now })
      .where("name", "=", name)
      .execute();
  }

  /** Stores an estimate of the job's total, unless it finished meanwhile. */
  async setTotal(name: string, total: number): Promise<void> {
    await this.database.db
      .updateTable("background_jobs")
      .set({ total })
      .where("name", "=", name)
      .where("status", "!=", "done")
      .execute();
  }
}

/** The state of a job that has no stored row yet. */
export function pendingState(name: string, progress: unknown, now: number): JobState {
  return {
    name,
    status: "pending",
    progress,
    processed: 0,
    total: null,
    durationMs: 0,
    startedTs: null,
    updatedTs: now,
    completedTs: null,
    lastError: null,
  };
}

function toState(row: Selectable<BackgroundJobsTable>): JobState {
  return {
    name: row.name,
    status: row.status as JobStatus,
    progress: JSON.parse(row.progress) as unknown,
    processed: Number(row.processed),
    total: row.total === null ? null : Number(row.total),
    durationMs: Number(row.duration_ms),
    startedTs: row.started_ts === null ? null : Number(row.started_ts),
    updatedTs: Number(row.updated_ts),
    completedTs: row.completed_ts === null ? null : Number(row.completed_ts),
    lastError: row.last_error,
  };
}
