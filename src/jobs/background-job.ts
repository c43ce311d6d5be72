/**
 * The seam between the job runner and the jobs it runs (docs/jobs.md). A
 * job is a resumable walk over some data, done in small batches; the runner
 * owns scheduling, locking, persistence and retries.
 */
import type { Db, Engine, Tx } from "../db/database.js";

/** What the runner hands to each batch (and to `prepare`). */
export interface PrepareContext {
  /** Upper bound on the items one batch should touch. */
  readonly batchSize: number;
  readonly engine: Engine;
  /** Aborted when the runner stops: a batch may throw to roll itself back. */
  readonly signal: AbortSignal;
}

/** What the runner hands to each batch. */
export interface BatchContext<F = undefined> extends PrepareContext {
  /** What `prepare` returned for this batch (undefined for a job without `prepare`). */
  readonly prepared: F | undefined;
}

/** The outcome of one batch. */
export interface BatchResult<P> {
  /** Where the next batch starts; saved in the batch's transaction. */
  readonly progress: P;
  /** Items this batch processed (what the progress bar counts). */
  readonly processed: number;
  /** True when there is nothing left: the job is never run again. */
  readonly done: boolean;
  /** Called once the batch's transaction has committed (e.g. to wake readers). */
  readonly committed?: () => void;
  /**
   * A recurring job's "nothing more to do for now": the runner waits this
   * long (instead of its short pause) before the job's next batch.
   */
  readonly idleMs?: number;
}

/**
 * A background job. `runBatch` runs inside a transaction that also saves the
 * progress it returns, so it must do all of its work through `tx` (work done
 * elsewhere would survive a rollback and be done twice). `progress` must be
 * JSON-serialisable: it is stored as JSON between batches and processes.
 */
export interface BackgroundJob<P = unknown, F = undefined> {
  /** Unique and stable: it names the stored state and the job's lock. */
  readonly name: string;
  /** Progress of a job that has not run yet. */
  readonly initialProgress: P;
  /**
   * A recurring job (e.g. the URL-preview expiry): it never reports `done`,
   * and reports `idleMs` when it has caught up. The server runs recurring
   * jobs beside the others (a one-off job does not wait for one, nor one for
   * a long backfill); `run()` (`mxcd jobs run`) runs each until it is idle.
   */
  readonly recurring?: boolean;
  /**
   * Optional slow, read-only step run BEFORE the batch's transaction, with
   * the progress last committed (read without the job's lock): e.g. a
   * request to another server, which must not hold a transaction (on
   * SQLite, the database's one write lock) open. Its result reaches
   * `runBatch` as `context.prepared`; `runBatch` must check that it still
   * matches the progress it is given under the lock (another process may
   * have moved on meanwhile) and otherwise ignore it. A throw fails the
   * batch like a throw from `runBatch`.
   */
  prepare?(progress: P, context: PrepareContext): Promise<F>;
  /** Does the next batch after `progress`. */
  runBatch(tx: Tx, progress: P, context: BatchContext<F>): Promise<BatchResult<P>>;
  /**
   * A cheap-enough estimate of the items the whole job processes, for
   * progress bars; `progress` is what the job's first batch committed.
   */
  estimateTotal?(db: Db, progress: P): Promise<number>;
}

/** A job of any progress and prepared types (runners and job lists only pass them through). */
// biome-ignore lint/suspicious/noExplicitAny: whoever holds a job list never looks inside its types.
export type AnyJob = BackgroundJob<any, any>;
