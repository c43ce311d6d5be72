/**
 * `quarantine-feed-backfill`: records media that was quarantined before the
 * change feed existed (a database imported from Synapse or an older mxcd),
 * like Synapse's `flag_existing_quarantined_media` (reference §7), made
 * exact: one `quarantined: true` record per quarantined item that has no
 * feed record at all, never a duplicate, never a stale one.
 *
 * It walks local media by `media_id`, then the remote cache by
 * `(media_origin, media_id)`, `batchSize` rows per batch by keyset on the
 * primary keys. Unlike Synapse it does not filter on `quarantined_by` in the
 * scan: without an index on that column (reference §10) a filtered page may
 * walk the whole table. Paging all rows bounds every batch to `batchSize`
 * index entries plus one probe per row into the `(origin, media_id)` feed
 * index.
 *
 * Race argument. Every writer of feed records (QuarantineService) takes the
 * feed lock (QuarantineRepository.lockFeed) before it reads or changes
 * `quarantined_by`, and changes it and appends its record in the same
 * transaction; records are never deleted. The page is scanned WITHOUT the
 * lock, so uploads and quarantines are not held up by the scan, and that is
 * safe for every row the scan passes over: a row seen unquarantined, or with
 * a record, needs nothing from the backfill whatever happens next (any later
 * quarantine is recorded by its writer). The rows that look quarantined with
 * no record are the only ones acted on, and only after taking the feed lock
 * and re-reading them under it: the re-read sees each row exactly as the
 * last committed writer left it, with that writer's record, and no writer
 * can commit until the batch does. So:
 * - quarantined in the imported data only: still no record, one is appended;
 * - released (or re-quarantined) by an admin who committed before the lock:
 *   the re-read sees the release, or the admin's record, and appends nothing;
 * - an admin acting after the lock waits for the batch, then appends its own
 *   record after the batch's: the feed's last word is right in every order.
 */
import type { Db, Tx } from "../db/database.js";
import type { QuarantineRepository, Transition } from "../repositories/quarantine-repository.js";
import type { BackgroundJob, BatchContext, BatchResult } from "./background-job.js";
import {
  needsRecord,
  readLocal,
  readRemote,
  type ScannedRow,
} from "./quarantine-backfill-queries.js";

/** Where the walk is: the last keys seen in each phase (stored as JSON). */
export interface BackfillProgress {
  readonly phase: "local" | "remote";
  readonly lastLocalMediaId: string;
  readonly lastRemoteOrigin: string;
  readonly lastRemoteMediaId: string;
}

/** The job's name (its row in `background_jobs` and its lock key). */
export const QUARANTINE_FEED_BACKFILL = "quarantine-feed-backfill";

/** The backfill described above; one instance per process. */
export class QuarantineFeedBackfillJob implements BackgroundJob<BackfillProgress> {
  readonly name = QUARANTINE_FEED_BACKFILL;
  readonly initialProgress: BackfillProgress = {
    phase: "local",
    lastLocalMediaId: "",
    lastRemoteOrigin: "",
    lastRemoteMediaId: "",
  };

  constructor(
    private readonly quarantine: QuarantineRepository,
    /** Told after a batch that appended records commits (long-poll wake-up). */
    private readonly feedSignal: { notify(): void } = { notify() {} },
    private readonly now: () => number = Date.now,
  ) {}

  /** Rows the walk visits: every local and cached remote media row. */
  async estimateTotal(db: Db): Promise<number> {
    let total = 0;
    for (const table of ["local_media_repository", "remote_media_cache"] as const) {
      const row = await db
        .selectFrom(table)
        .select((eb) => eb.fn.countAll<number>().as("n"))
        .executeTakeFirstOrThrow();
      total += Number(row.n);
    }
    return total;
  }

  /** Scans the next page of the current phase and records its quarantined, unrecorded rows. */
  async runBatch(
    tx: Tx,
    progress: BackfillProgress,
    { batchSize }: BatchContext,
  ): Promise<BatchResult<BackfillProgress>> {
    const local = progress.phase === "local";
    const rows = local
      ? await readLocal(tx, { after: progress.lastLocalMediaId, limit: batchSize })
      : await readRemote(tx, {
          origin: progress.lastRemoteOrigin,
          mediaId: progress.lastRemoteMediaId,
          limit: batchSize,
        });
    const appended = await this.#recordUnderLock(tx, rows.filter(needsRecord));
    const last = rows[rows.length - 1];
    const finished = rows.length < batchSize;
    let next: BackfillProgress;
    if (local) {
      next = last ? { ...progress, lastLocalMediaId: last.mediaId } : progress;
      if (finished) next = { ...next, phase: "remote" };
    } else {
      next = last
        ? { ...progress, lastRemoteOrigin: last.origin!, lastRemoteMediaId: last.mediaId }
        : progress;
    }
    return {
      progress: next,
      processed: rows.length,
      done: !local && finished,
      committed: appended > 0 ? () => this.feedSignal.notify() : undefined,
    };
  }

  /** Takes the feed lock, re-reads `candidates` under it, and records those still unrecorded. */
  async #recordUnderLock(tx: Tx, candidates: readonly ScannedRow[]): Promise<number> {
    if (candidates.length === 0) return 0;
    // See the race argument above: nothing is appended from a read made before the lock.
    await this.quarantine.lockFeed(tx);
    const byOrigin = new Map<string | null, string[]>();
    for (const row of candidates) {
      byOrigin.set(row.origin, [...(byOrigin.get(row.origin) ?? []), row.mediaId]);
    }
    const current: ScannedRow[] = [];
    for (const [origin, ids] of byOrigin) {
      const rows =
        origin === null ? await readLocal(tx, { ids }) : await readRemote(tx, { origin, ids });
      current.push(...rows.filter(needsRecord));
    }
    return this.#append(tx, current);
  }

  /** Appends one `quarantined: true` record per row, grouped by who quarantined it. */
  async #append(tx: Tx, rows: readonly ScannedRow[]): Promise<number> {
    const byQuarantiner = new Map<string, Transition[]>();
    for (const row of rows) {
      const group = byQuarantiner.get(row.quarantinedBy!) ?? [];
      group.push({ origin: row.origin, mediaId: row.mediaId, sha256: row.sha256 });
      byQuarantiner.set(row.quarantinedBy!, group);
    }
    const ts = this.now();
    for (const [by, transitions] of byQuarantiner) {
      await this.quarantine.appendChanges(tx, transitions, by, ts);
    }
    return rows.length;
  }
}
