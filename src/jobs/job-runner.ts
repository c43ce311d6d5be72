/**
 * Runs background jobs (DESIGN.md "Background jobs", docs/jobs.md).
 *
 * Design note. Jobs run one after another, in registration order, batch by
 * batch. Each batch is ONE transaction that (1) takes the job's lock
 * (job-lock.ts: a PostgreSQL advisory lock, or SQLite's write lock), (2)
 * reads the job's stored progress under that lock, (3) does the batch's
 * work and (4) saves the new progress. Exactly-once follows: a batch starts
 * from the progress the previous batch committed, and its work becomes
 * visible if and only if its progress does; a crash, a stop or an error at
 * any point rolls back both, and the next batch (in this process or another)
 * redoes exactly that batch. One runner: the lock admits one batch of a job
 * at a time across every process; a process that finds it taken skips and
 * retries later.
 *
 * Start-up cost is constant: `start()` only inserts missing job rows and
 * launches the loop without awaiting it. Batches are small and separated by
 * a pause so other transactions get the database; a failed batch is logged,
 * recorded in `last_error` and retried after an exponential back-off. The
 * loop never throws into the process.
 */
import { setTimeout as sleep } from "node:timers/promises";
import type { Database } from "../db/database.js";
import type { Logger } from "../logging/logger.js";
import { JobRepository, type JobState, pendingState } from "../repositories/job-repository.js";
import type { AnyJob, BatchResult } from "./background-job.js";
import { tryJobLock } from "./job-lock.js";
import {
  DEFAULT_JOB_RUNNER_OPTIONS,
  type JobObserver,
  type JobRunnerOptions,
} from "./job-runner-options.js";

export type { JobObserver, JobRunnerOptions, JobState };

/** One batch attempt: another process had the lock, the job is finished, or it advanced. */
type Step = {
  kind: "busy" | "done" | "progressed";
  state?: JobState;
  result?: BatchResult<unknown>;
};

/**
 * Runs registered jobs in the background (`start`/`stop`, for the server) or
 * in the foreground (`run`, for `mxcd jobs run`); see the design note above.
 */
export class JobRunner {
  readonly #jobs: AnyJob[] = [];
  readonly #repository: JobRepository;
  readonly #options: JobRunnerOptions;
  readonly #abort = new AbortController();
  #started?: Promise<void>;
  #stopped?: Promise<void>;
  #loop?: Promise<void>;

  constructor(
    private readonly database: Database,
    jobs: readonly AnyJob[],
    private readonly logger: Logger,
    options: Partial<JobRunnerOptions> = {},
    private readonly observer: JobObserver = {},
  ) {
    this.#repository = new JobRepository(database);
    this.#options = { ...DEFAULT_JOB_RUNNER_OPTIONS, ...options };
    for (const job of jobs) this.register(job);
  }

  /** Adds a job, run after those registered before it; only before start(). */
  register(job: AnyJob): void {
    if (this.#started) throw new Error("background jobs must be registered before start()");
    if (this.#jobs.some((j) => j.name === job.name)) {
      throw new Error(`background job ${job.name} is registered twice`);
    }
    this.#jobs.push(job);
  }

  /**
   * Records missing jobs as pending, then runs every unfinished job in the
   * background; resolves without waiting for them. Idempotent.
   */
  start(): Promise<void> {
    this.#started ??= (async () => {
      await this.#ensure();
      if (this.#abort.signal.aborted) return;
      this.#loop = this.#runAll(this.#abort.signal, false, true).catch((error: unknown) => {
        this.logger.error({ err: error }, "background job runner stopped unexpectedly");
      });
    })();
    return this.#started;
  }

  /** Stops the loop, waiting up to `stopTimeoutMs` for the batch in flight. Idempotent. */
  stop(): Promise<void> {
    this.#stopped ??= (async () => {
      this.#abort.abort();
      await this.#started?.catch(() => {});
      if (!this.#loop) return;
      const timeout = new AbortController();
      const expired = sleep(this.#options.stopTimeoutMs, true, { signal: timeout.signal });
      const timedOut = await Promise.race([
        this.#loop.then(() => false),
        expired.catch(() => false),
      ]);
      timeout.abort();
      if (timedOut) this.logger.warn("background job batch still running after stop timeout");
    })();
    return this.#stopped;
  }

  /**
   * Runs every unfinished job to completion in the foreground (`mxcd jobs
   * run`); returns early when `signal` aborts. With `failFast` the first
   * failed batch throws instead of being retried. Not for use beside start().
   */
  async run(options: { signal?: AbortSignal; failFast?: boolean } = {}): Promise<void> {
    await this.#ensure();
    await this.#runAll(options.signal ?? new AbortController().signal, options.failFast ?? false);
  }

  /** Registered jobs (in order; pending when not stored yet), then other stored jobs. */
  async states(): Promise<JobState[]> {
    const stored = new Map((await this.#repository.list()).map((s) => [s.name, s]));
    const now = Date.now();
    const registered = this.#jobs.map((job) => {
      const state = stored.get(job.name) ?? pendingState(job.name, job.initialProgress, now);
      return job.recurring === true ? { ...state, recurring: true } : state;
    });
    const others = [...stored.values()].filter((s) => !this.#jobs.some((j) => j.name === s.name));
    return [...registered, ...others];
  }

  #ensure(): Promise<void> {
    const rows = this.#jobs.map((job) => ({ name: job.name, progress: job.initialProgress }));
    return this.#repository.ensure(rows, Date.now());
  }

  /**
   * One-off jobs one after another; in the background (`forever`) each
   * recurring job in a loop of its own beside them, else each until idle.
   */
  async #runAll(signal: AbortSignal, failFast: boolean, forever = false): Promise<void> {
    const recurring = this.#jobs.filter((job) => job.recurring === true);
    const lanes = forever ? recurring.map((job) => this.#runJob(job, signal, failFast, true)) : [];
    for (const job of this.#jobs) {
      if (signal.aborted) break;
      if (job.recurring !== true || !forever) await this.#runJob(job, signal, failFast);
    }
    await Promise.all(lanes);
  }

  /**
   * Runs one job's batches until it is done or `signal` aborts; a recurring
   * job until it reports `idleMs`, or with `forever`, until `signal` aborts.
   */
  async #runJob(
    job: AnyJob,
    signal: AbortSignal,
    failFast: boolean,
    forever = false,
  ): Promise<void> {
    let backoff = this.#options.retryMs;
    let estimated = job.estimateTotal === undefined;
    while (!signal.aborted) {
      let step: Step;
      try {
        step = await this.#batch(job, signal);
      } catch (error) {
        // A batch aborted by stop() rolled back: nothing to report.
        if (signal.aborted) return;
        await this.#recordFailure(job.name, error);
        if (failFast) throw error;
        await pause(backoff, signal);
        backoff = Math.min(backoff * 2, this.#options.maxRetryMs);
        continue;
      }
      backoff = this.#options.retryMs;
      if (step.kind === "done") {
        const processed = step.state?.processed;
        if (processed !== undefined)
          this.logger.info({ job: job.name, processed }, "background job done");
        return;
      }
      // Estimated once the job has really started, outside any batch, so
      // a finished job never pays for it.
      if (!estimated && step.state?.total === null) {
        estimated = true;
        await this.#estimate(job, step.state.progress);
      }
      const idleMs = step.result?.idleMs;
      if (idleMs !== undefined && !forever) return;
      const wait = step.kind === "busy" ? this.#options.busyRetryMs : this.#options.pauseMs;
      await pause(idleMs ?? wait, signal);
    }
  }

  /**
   * One batch: the job's `prepare` step (if any) outside any transaction,
   * then one transaction: lock, read progress, work, save progress.
   */
  async #batch(job: AnyJob, signal: AbortSignal): Promise<Step> {
    const startedAt = performance.now();
    const { batchSize } = this.#options;
    const { engine } = this.database;
    let prepared: unknown;
    if (job.prepare) {
      const stored = await this.#repository.get(job.name);
      if (!stored) throw new Error(`background job ${job.name} has no stored state`);
      if (stored.status === "done") return { kind: "done" };
      prepared = await job.prepare(stored.progress, { batchSize, engine, signal });
    }
    const outcome = await this.database.transaction(async (tx) => {
      if (!(await tryJobLock(tx, engine, job.name))) return { kind: "busy" as const };
      const current = await this.#repository.claim(tx, job.name);
      if (!current) throw new Error(`background job ${job.name} has no stored state`);
      if (current.status === "done") return { kind: "done" as const };
      const context = { batchSize, engine, signal, prepared };
      const result = await job.runBatch(tx, current.progress, context);
      const state = await this.#repository.saveBatch(tx, job.name, {
        ...result,
        durationMs: performance.now() - startedAt,
        now: Date.now(),
      });
      return { kind: result.done ? ("done" as const) : ("progressed" as const), state, result };
    });
    if (outcome.kind === "busy") this.observer.busy?.(job.name);
    if (outcome.result && outcome.state) this.#afterCommit(outcome.result, outcome.state);
    return outcome;
  }

  /** Post-commit callbacks; their failures are logged, never undo the batch. */
  #afterCommit(result: BatchResult<unknown>, state: JobState): void {
    try {
      result.committed?.();
      this.observer.committed?.(state);
    } catch (error) {
      this.logger.warn({ err: error, job: state.name }, "background job post-commit hook failed");
    }
  }

  async #recordFailure(name: string, error: unknown): Promise<void> {
    const message = error instanceof Error ? error.message : String(error);
    this.logger.warn({ err: error, job: name }, "background job batch failed");
    this.observer.failed?.(name, error);
    await this.#repository.recordError(name, message, Date.now()).catch((e: unknown) => {
      this.logger.warn({ err: e, job: name }, "could not record a background job failure");
    });
  }

  async #estimate(job: AnyJob, progress: unknown): Promise<void> {
    try {
      const total = await job.estimateTotal!(this.database.db, progress);
      await this.#repository.setTotal(job.name, total);
    } catch (error) {
      this.logger.warn({ err: error, job: job.name }, "could not estimate a background job's size");
    }
  }
}

/** Waits `ms`, or less when `signal` aborts; never rejects. */
async function pause(ms: number, signal: AbortSignal): Promise<void> {
  await sleep(ms, undefined, { signal }).catch(() => {});
}
