/**
 * `near-duplicate-check` (docs/trust-and-safety.md "Near-duplicate
 * quarantine", docs/jobs.md): the one consumer of the PDQ hash log for
 * near-duplicate quarantine, and the sweep when `pdq_max_distance` changes.
 *
 * Design note.
 * - Driven by the log, not by whoever recorded the hash. Every PDQ hash
 *   written (hashing queue, `media-hash-backfill` in the server or in `mxcd
 *   jobs run`, any process) is appended to `pdq_hash_log` in its own
 *   transaction; this job walks the log from a persisted `position`. Each
 *   batch checks the records after it (NearDuplicateQuarantine.hashed) and
 *   saves the new position in the SAME transaction as the quarantines and
 *   feed records it makes (the job runner's exactly-once batches): a crash
 *   or kill -9 at any point rolls back both, so every record is checked
 *   exactly once, and each transition is recorded once in the feed. A
 *   release an admin makes after the check is never undone by a re-check.
 * - One consumer at a time: the job lock (PostgreSQL advisory lock, SQLite's
 *   write lock). The similarity searches run in `prepare`, outside the
 *   transaction; `runBatch` acts only if the progress is still the one
 *   prepared for, and re-checks every candidate inside (as every caller of
 *   NearDuplicateQuarantine does).
 * - Promptly: a process that records a hash calls `drain()` (below), which
 *   runs the job's batches at once, under the same lock, until the position
 *   has passed what the log held when it was called; the hashing queue waits
 *   for it, so an upload's check has committed when its hash is counted. The
 *   runner's own pass (every `IDLE_MS` when caught up) is the safety net.
 * - `distance` is the distance every record up to `position` was checked at
 *   (null: not checked, the option was off and the records were passed
 *   over). When the configured distance differs, a batch records a sweep:
 *   every quarantined source in the log up to `upTo` propagates, by
 *   `system`, to the images farther than `beyond` (the distance those
 *   records were checked at; null: all within the new distance). Lowering
 *   the distance needs no sweep and releases nothing. Sources only: a pair
 *   (source, near image) is found from the source's side whatever the order
 *   their hashes arrived in, and a source search is the costly part.
 * - Every process must run with the same `quarantine_similar`: two
 *   settings would retarget the job back and forth.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { afterCommit } from "../db/after-commit.js";
import type { Database, Db, Tx } from "../db/database.js";
import type { Logger } from "../logging/logger.js";
import type { NearDuplicateQuarantine } from "../media/near-duplicate-quarantine.js";
import type { QuarantineService } from "../media/quarantine-service.js";
import { JobRepository } from "../repositories/job-repository.js";
import type {
  MediaKey,
  QuarantinePropagationRepository,
} from "../repositories/quarantine-propagation-repository.js";
import type { BackgroundJob, BatchContext, BatchResult, PrepareContext } from "./background-job.js";
import { tryJobLock } from "./job-lock.js";

/** The job's name (its row in `background_jobs` and its lock key). */
export const NEAR_DUPLICATE_CHECK = "near-duplicate-check";

/** New log records checked per batch: each is one similarity search. */
export const MAX_CHECKS_PER_BATCH = 50;

/** Log records the sweep scans per batch (only sources are searched). */
export const MAX_SWEPT_PER_BATCH = 500;

/** Pause once caught up: the safety net behind `drain()` (crashes, other processes). */
export const IDLE_MS = 30_000;

/** A sweep after the distance changed: records `next < id <= upTo`, checked at `beyond`. */
export interface NearDuplicateSweep {
  readonly beyond: number | null;
  readonly upTo: number;
  readonly next: number;
}

export interface NearDuplicateCheckProgress {
  /** Log records up to this stream id are checked (or passed over while off). */
  readonly position: number;
  /** The distance they were checked at, at least; null: not checked. */
  readonly distance: number | null;
  readonly sweep: NearDuplicateSweep | null;
}

/** A log record to act on, with the candidates found near it before the transaction. */
interface Planned {
  readonly key: MediaKey;
  readonly pdq: string;
  readonly candidates: readonly MediaKey[];
}

/** What `prepare` found for one progress. */
export interface PreparedChecks {
  readonly from: NearDuplicateCheckProgress;
  readonly fresh: readonly Planned[];
  /** The position after the fresh records read. */
  readonly freshEnd: number;
  readonly swept: readonly Planned[];
  /** The sweep's `next` after the records scanned. */
  readonly sweptEnd: number;
  readonly scanned: number;
}

export interface NearDuplicateCheckDeps {
  readonly database: Database;
  readonly near: Pick<NearDuplicateQuarantine, "maxDistance" | "search">;
  readonly quarantine: Pick<QuarantineService, "checkHashed" | "sweepSource">;
  readonly log: Pick<QuarantinePropagationRepository, "logEnd" | "logPage">;
  readonly logger: Pick<Logger, "info">;
}

export class NearDuplicateCheckJob
  implements BackgroundJob<NearDuplicateCheckProgress, PreparedChecks>
{
  readonly name = NEAR_DUPLICATE_CHECK;
  readonly recurring = true;
  readonly initialProgress: NearDuplicateCheckProgress = {
    position: 0,
    distance: null,
    sweep: null,
  };

  constructor(private readonly deps: NearDuplicateCheckDeps) {}

  /** `quarantine_similar.pdq_max_distance` of this process. */
  get maxDistance(): number | null {
    return this.deps.near.maxDistance;
  }

  /** The log's newest committed stream id. */
  logEnd(db: Db = this.deps.database.db): Promise<number> {
    return this.deps.log.logEnd(db);
  }

  /** The log's length: a recurring job's progress bar is "records seen of records written". */
  estimateTotal(db: Db): Promise<number> {
    return this.logEnd(db);
  }

  /** Reads the next records (and sweep records) and searches near each (outside any transaction). */
  async prepare(
    progress: NearDuplicateCheckProgress,
    { batchSize }: PrepareContext,
  ): Promise<PreparedChecks> {
    const prepared = {
      from: progress,
      fresh: [] as Planned[],
      freshEnd: progress.position,
      swept: [] as Planned[],
      sweptEnd: progress.sweep?.next ?? 0,
      scanned: 0,
    };
    const d = this.maxDistance;
    if (d === null || progress.distance !== d) return prepared;
    const db = this.deps.database.db;
    const end = await this.logEnd(db);
    const limit = Math.min(batchSize, MAX_CHECKS_PER_BATCH);
    for (const e of await this.deps.log.logPage(db, progress.position, end, limit)) {
      prepared.freshEnd = e.streamId;
      // Gone or hashed again: nothing to check (a later record speaks for the new hash).
      if (e.current !== e.pdq) continue;
      prepared.fresh.push({
        key: e.key,
        pdq: e.pdq,
        candidates: await this.deps.near.search(e.pdq),
      });
    }
    const sweep = progress.sweep;
    if (sweep) {
      const swept = Math.min(batchSize, MAX_SWEPT_PER_BATCH);
      const page = await this.deps.log.logPage(db, sweep.next, sweep.upTo, swept);
      prepared.scanned = page.length;
      prepared.sweptEnd = page.length < swept ? sweep.upTo : page[page.length - 1]!.streamId;
      for (const e of page) {
        if (!e.quarantined || e.current !== e.pdq) continue;
        prepared.swept.push({
          key: e.key,
          pdq: e.pdq,
          candidates: await this.deps.near.search(e.pdq),
        });
      }
    }
    return prepared;
  }

  async runBatch(
    tx: Tx,
    progress: NearDuplicateCheckProgress,
    { prepared }: BatchContext<PreparedChecks>,
  ): Promise<BatchResult<NearDuplicateCheckProgress>> {
    const d = this.maxDistance;
    if (d === null) return this.#passOver(tx, progress);
    if (progress.distance !== d) {
      const next = retarget(progress, d, await this.logEnd(tx));
      return { progress: next, processed: 0, done: false, committed: () => this.#announce(next) };
    }
    if (!prepared || !sameProgress(prepared.from, progress)) {
      return { progress, processed: 0, done: false };
    }
    let changed = 0;
    const { quarantine } = this.deps;
    for (const f of prepared.fresh) {
      changed += await quarantine.checkHashed(tx, f.key, f.pdq, f.candidates);
    }
    const sweep = progress.sweep;
    for (const s of prepared.swept) {
      changed += await quarantine.sweepSource(tx, s.key, s.pdq, s.candidates, sweep!.beyond);
    }
    const swept =
      sweep && prepared.sweptEnd < sweep.upTo ? { ...sweep, next: prepared.sweptEnd } : null;
    const next = { position: prepared.freshEnd, distance: d, sweep: swept };
    const caughtUp = prepared.freshEnd === progress.position && swept === null;
    return {
      progress: next,
      processed: prepared.freshEnd - progress.position + prepared.scanned,
      done: false,
      committed: () => {
        if (changed > 0) {
          this.deps.logger.info(
            { job: this.name, quarantined: changed },
            "near duplicates quarantined",
          );
        }
        if (sweep && !swept)
          this.deps.logger.info({ job: this.name, distance: d }, "near-duplicate sweep done");
      },
      ...(caughtUp && { idleMs: IDLE_MS }),
    };
  }

  /** Off: records are passed over (not checked); turning it on sweeps them. */
  async #passOver(
    tx: Tx,
    progress: NearDuplicateCheckProgress,
  ): Promise<BatchResult<NearDuplicateCheckProgress>> {
    const end = await this.logEnd(tx);
    const next = { position: end, distance: null, sweep: null };
    return {
      progress: next,
      processed: Math.max(0, end - progress.position),
      done: false,
      idleMs: IDLE_MS,
    };
  }

  #announce(next: NearDuplicateCheckProgress): void {
    const { sweep } = next;
    this.deps.logger.info(
      {
        job: this.name,
        distance: next.distance,
        sweep: sweep && { beyond: sweep.beyond, up_to: sweep.upTo },
      },
      sweep
        ? "near-duplicate distance changed: sweeping older hashes"
        : "near-duplicate distance changed",
    );
  }
}

/**
 * The progress once the configured distance is `d` (see the design note):
 * records never checked are swept in full; records checked at a distance
 * below `d` are swept beyond it; otherwise nothing is swept.
 */
export function retarget(
  p: NearDuplicateCheckProgress,
  d: number,
  end: number,
): NearDuplicateCheckProgress {
  if (p.distance === null) {
    return {
      position: end,
      distance: d,
      sweep: end > 0 ? { beyond: null, upTo: end, next: 0 } : null,
    };
  }
  const beyond = p.sweep ? lower(p.sweep.beyond, p.distance) : p.distance;
  if (beyond !== null && beyond >= d) return { position: p.position, distance: d, sweep: null };
  return {
    position: p.position,
    distance: d,
    sweep: p.position > 0 ? { beyond, upTo: p.position, next: 0 } : null,
  };
}

function lower(a: number | null, b: number | null): number | null {
  return a === null || b === null ? null : Math.min(a, b);
}

function sameProgress(a: NearDuplicateCheckProgress, b: NearDuplicateCheckProgress): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/** Tries before a `drain` gives up on a busy lock (the runner's pass then does the work). */
const DRAIN_ATTEMPTS = 400;
const BUSY_RETRY_MS = 25;

/**
 * Runs the job's batches now, in this process (see the design note): one
 * drain at a time per process, each under the job's lock like the runner's
 * batches. Resolves once the job has checked every record the log held
 * when it was called (or gave up: the runner's next pass does it).
 */
export class NearDuplicateCheckDrain {
  readonly #jobs: JobRepository;
  #chain: Promise<void> = Promise.resolve();

  constructor(
    private readonly database: Database,
    private readonly job: NearDuplicateCheckJob,
  ) {
    this.#jobs = new JobRepository(database);
  }

  drain(): Promise<void> {
    if (this.job.maxDistance === null) return Promise.resolve();
    const run = this.#chain.then(() => this.#catchUp());
    this.#chain = run.catch(() => {});
    return run;
  }

  async #catchUp(): Promise<void> {
    const target = await this.job.logEnd();
    // Checked: past the target, and not left to a sweep that has not reached it.
    const done = (p: NearDuplicateCheckProgress) =>
      p.distance === this.job.maxDistance &&
      p.position >= target &&
      (p.sweep === null || p.sweep.upTo < target || p.sweep.next >= target);
    for (let attempt = 0; attempt < DRAIN_ATTEMPTS; attempt++) {
      const outcome = await this.#batch();
      if (outcome === undefined) return;
      if (outcome !== "busy") {
        if (done(outcome)) return;
        continue;
      }
      const stored = await this.#jobs.get(this.job.name);
      if (!stored || done(stored.progress as NearDuplicateCheckProgress)) return;
      await sleep(BUSY_RETRY_MS);
    }
  }

  /** One batch as the runner does it: prepare, then lock, claim, run, save in one transaction. */
  async #batch(): Promise<NearDuplicateCheckProgress | "busy" | undefined> {
    const stored = await this.#jobs.get(this.job.name);
    if (!stored) return undefined;
    const { engine } = this.database;
    const context = {
      batchSize: MAX_SWEPT_PER_BATCH,
      engine,
      signal: new AbortController().signal,
    };
    const startedAt = performance.now();
    const prepared = await this.job.prepare(stored.progress as NearDuplicateCheckProgress, context);
    return this.database.transaction(async (tx) => {
      if (!(await tryJobLock(tx, engine, this.job.name))) return "busy" as const;
      const current = await this.#jobs.claim(tx, this.job.name);
      if (!current) return undefined;
      const progress = current.progress as NearDuplicateCheckProgress;
      const result = await this.job.runBatch(tx, progress, { ...context, prepared });
      await this.#jobs.saveBatch(tx, this.job.name, {
        ...result,
        durationMs: performance.now() - startedAt,
        now: Date.now(),
      });
      if (result.committed) afterCommit(tx, result.committed);
      return result.progress;
    });
  }
}
