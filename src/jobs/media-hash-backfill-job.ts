/**
 * `media-hash-backfill` (docs/trust-and-safety.md "Stored hashes"): computes
 * MD5 and PDQ for media that has no PDQ outcome yet — media stored before
 * migration 0010, imported from Synapse, or admitted by a process that died
 * (or whose queue was full) before its hashing queue got to it.
 *
 * A recurring job. It walks the work list (rows whose `pdq_status` is null,
 * through the partial `*_hash_todo` indexes) of local media by `media_id`,
 * then of the remote cache by `(media_origin, media_id)`, in keyset pages
 * of at most `MAX_ITEMS_PER_BATCH`; when both are walked it starts over
 * after `IDLE_MS`. Rows younger than `minAgeMs` are left to the hashing
 * queue of the process that admitted them (a later pass takes them if it
 * never does).
 *
 * The slow part — reading bytes through the blob store, hashing — runs in
 * `prepare`, outside any transaction (on SQLite a transaction is the
 * database's one write lock); PDQ goes through the MediaHashingService, so
 * it shares the thumbnail decode slots and the size cap. `runBatch` then,
 * under the job's lock, checks that the prepared page starts where the
 * committed progress does (else another process moved on: nothing is
 * written, the page is prepared again) and records each outcome with a
 * write conditional on `pdq_status IS NULL`, so an outcome the queue
 * recorded meanwhile is kept. A crash at any point loses at most the page
 * being prepared: its rows are still on the work list.
 */
import type { Db, Tx } from "../db/database.js";
import { outcomePdqColumns, type PdqColumns } from "../domain/media-hashes.js";
import type { Logger } from "../logging/logger.js";
import { hashItemKey, type MediaHashingService } from "../media/media-hashing-service.js";
import type {
  HashSubject,
  HashTodo,
  MediaHashRepository,
} from "../repositories/media-hash-repository.js";
import { BlobNotFoundError } from "../storage/blob-store.js";
import type { BackgroundJob, BatchContext, BatchResult, PrepareContext } from "./background-job.js";

/** The job's name (its row in `background_jobs` and its lock key). */
export const MEDIA_HASH_BACKFILL = "media-hash-backfill";

/** Items hashed per batch: each is a blob read (and maybe a decode). */
export const MAX_ITEMS_PER_BATCH = 20;

/** Pause once every row has an outcome, before the next pass. */
export const IDLE_MS = 10 * 60_000;

/** Default age below which rows are left to the hashing queue. */
export const MIN_AGE_MS = 60_000;

/** Where the walk is: the last keys seen in each phase. */
export interface MediaHashProgress {
  readonly phase: "local" | "remote";
  readonly lastLocalMediaId: string;
  readonly lastRemoteOrigin: string;
  readonly lastRemoteMediaId: string;
}

/** One item's computed hashes. */
interface Computed {
  readonly subject: HashSubject;
  readonly md5: string | null;
  readonly pdq: PdqColumns;
}

/** A page hashed by `prepare`, for the progress it started from. */
export interface PreparedHashes {
  readonly from: MediaHashProgress;
  readonly items: readonly Computed[];
  /** Fewer rows than asked: this phase is walked. */
  readonly last: boolean;
}

export interface MediaHashBackfillDeps {
  readonly hashes: Pick<MediaHashRepository, "record" | "localTodo" | "remoteTodo" | "countTodo">;
  readonly hashing: Pick<MediaHashingService, "pdqOf" | "md5Of">;
  readonly logger: Pick<Logger, "info">;
  /** Rows younger than this are left to the hashing queue; default MIN_AGE_MS. */
  readonly minAgeMs?: number;
  readonly now?: () => number;
}

export class MediaHashBackfillJob implements BackgroundJob<MediaHashProgress, PreparedHashes> {
  readonly name = MEDIA_HASH_BACKFILL;
  readonly recurring = true;
  readonly initialProgress: MediaHashProgress = {
    phase: "local",
    lastLocalMediaId: "",
    lastRemoteOrigin: "",
    lastRemoteMediaId: "",
  };

  constructor(private readonly deps: MediaHashBackfillDeps) {}

  /**
   * Items processed so far plus the rows still on the work list (the
   * runner estimates after the first batch, which already took its items
   * off the list).
   */
  async estimateTotal(db: Db): Promise<number> {
    const state = await db
      .selectFrom("background_jobs")
      .select("processed")
      .where("name", "=", this.name)
      .executeTakeFirst();
    return Number(state?.processed ?? 0) + (await this.deps.hashes.countTodo(db));
  }

  /** Reads the next page of the work list and hashes it (outside any transaction). */
  async prepare(
    progress: MediaHashProgress,
    { batchSize, signal }: PrepareContext,
  ): Promise<PreparedHashes> {
    const limit = Math.min(batchSize, MAX_ITEMS_PER_BATCH);
    const before = (this.deps.now ?? Date.now)() - (this.deps.minAgeMs ?? MIN_AGE_MS);
    const rows =
      progress.phase === "local"
        ? await this.deps.hashes.localTodo(progress.lastLocalMediaId, limit, before)
        : await this.deps.hashes.remoteTodo(
            { origin: progress.lastRemoteOrigin, mediaId: progress.lastRemoteMediaId },
            limit,
            before,
          );
    const items: Computed[] = [];
    for (const row of rows) {
      // Stopping: the page is prepared again by the next run.
      if (signal.aborted) throw signal.reason;
      items.push(await this.#compute(row));
    }
    return { from: progress, items, last: rows.length < limit };
  }

  async runBatch(
    tx: Tx,
    progress: MediaHashProgress,
    { prepared }: BatchContext<PreparedHashes>,
  ): Promise<BatchResult<MediaHashProgress>> {
    if (!prepared || !sameProgress(prepared.from, progress)) {
      return { progress, processed: 0, done: false };
    }
    let recorded = 0;
    for (const item of prepared.items) {
      if (await this.deps.hashes.record(item.subject, item.pdq, item.md5, tx)) recorded += 1;
    }
    const next = advance(progress, prepared);
    const passDone = progress.phase === "remote" && prepared.last;
    return {
      progress: next,
      processed: prepared.items.length,
      done: false,
      committed: () => {
        if (recorded > 0) {
          this.deps.logger.info({ job: this.name, recorded }, "stored media hashes");
        }
      },
      ...(passDone && { idleMs: IDLE_MS }),
    };
  }

  /** MD5 (streamed, when the row has none) and the PDQ outcome of one row. */
  async #compute(row: HashTodo): Promise<Computed> {
    const key = hashItemKey(row.subject, row);
    let md5 = row.md5;
    if (md5 === null) {
      try {
        md5 = await this.deps.hashing.md5Of(key);
      } catch (error) {
        if (!(error instanceof BlobNotFoundError)) throw error;
        // Nothing to hash: recorded as such, so it leaves the work list.
        const pdq = outcomePdqColumns({
          hash: null,
          quality: null,
          reason: "bytes missing from the store",
        });
        return { subject: row.subject, md5: null, pdq };
      }
    }
    const outcome = await this.deps.hashing.pdqOf({
      subject: row.subject,
      key,
      mediaType: row.mediaType,
      mediaLength: row.mediaLength,
    });
    return { subject: row.subject, md5, pdq: outcomePdqColumns(outcome) };
  }
}

/** The progress after a prepared page: past its last row, or on to the next phase. */
function advance(progress: MediaHashProgress, prepared: PreparedHashes): MediaHashProgress {
  const last = prepared.items[prepared.items.length - 1]?.subject;
  let next = progress;
  if (last?.kind === "local") next = { ...next, lastLocalMediaId: last.mediaId };
  if (last?.kind === "remote") {
    next = { ...next, lastRemoteOrigin: last.origin, lastRemoteMediaId: last.mediaId };
  }
  if (!prepared.last) return next;
  // Local walked: on to the remote cache; remote walked: the next pass starts over.
  return progress.phase === "local"
    ? { ...next, phase: "remote", lastRemoteOrigin: "", lastRemoteMediaId: "" }
    : { phase: "local", lastLocalMediaId: "", lastRemoteOrigin: "", lastRemoteMediaId: "" };
}

function sameProgress(a: MediaHashProgress, b: MediaHashProgress): boolean {
  return (
    a.phase === b.phase &&
    a.lastLocalMediaId === b.lastLocalMediaId &&
    a.lastRemoteOrigin === b.lastRemoteOrigin &&
    a.lastRemoteMediaId === b.lastRemoteMediaId
  );
}
