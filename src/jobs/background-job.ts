/**
 * The seam between the job runner and the jobs it runs (docs/jobs.md). A
 * job is a resumable walk over some data, done in small batches; the runner
 * owns scheduling, locking, persistence and retries.
 */
import type { Db, Engine, Tx } from "../db/database.js";

/** What the runner hands to each batch. */
export interface BatchContext {
  /** Upper bound on the items one batch should touch. */
  readonly batchSize: number;
  readonly engine: Engine;
  /** Aborted when the runner stops: a batch may throw to roll itself back. */
  readonly signal: AbortSignal;
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
}

/**
 * A background job. `runBatch` runs inside a transaction that also saves the
 * progress it returns, so it must do all of its work through `tx` (work done
 * elsewhere would survive a rollback and be done twice). `progress` must be
 * JSON-serialisable: it is stored as JSON between batches and processes.
 */
export interface BackgroundJob<P = unknown> {
  /** Unique and stable: it names the stored state and the job's lock. */
  readonly name: string;
  /** Progress of a job that has not run yet. */
  readonly initialProgress: P;
  /** Does the next batch after `progress`. */
  runBatch(tx: Tx, progress: P, context: BatchContext): Promise<BatchResult<P>>;
  /** A cheap-enough estimate of the items the whole job processes, for progress bars. */
  estimateTotal?(db: Db): Promise<number>;
}
