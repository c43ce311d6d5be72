/** Tuning and observation of a JobRunner (src/jobs/job-runner.ts, docs/jobs.md). */
import type { JobState } from "../repositories/job-repository.js";

/** How a runner paces its jobs; every field has a default (below). */
export interface JobRunnerOptions {
  /** Items per batch (passed to jobs as `batchSize`). */
  readonly batchSize: number;
  /** Pause between two batches of a job. */
  readonly pauseMs: number;
  /** Wait before retrying a job whose lock another process holds. */
  readonly busyRetryMs: number;
  /** First back-off after a failed batch; doubles up to `maxRetryMs`. */
  readonly retryMs: number;
  readonly maxRetryMs: number;
  /** How long `stop()` waits for the batch in flight. */
  readonly stopTimeoutMs: number;
}

/** The server's pacing: small batches, short pauses, retries backing off to a minute. */
export const DEFAULT_JOB_RUNNER_OPTIONS: JobRunnerOptions = {
  batchSize: 500,
  pauseMs: 10,
  busyRetryMs: 1000,
  retryMs: 1000,
  maxRetryMs: 60_000,
  stopTimeoutMs: 5000,
};

/** Optional callbacks, for progress bars and tests. */
export interface JobObserver {
  /** A batch committed; `state` is the job's new stored state. */
  committed?(state: JobState): void;
  /** Another process holds the job's lock; this runner retries later. */
  busy?(name: string): void;
  /** A batch failed and rolled back. */
  failed?(name: string, error: unknown): void;
}
