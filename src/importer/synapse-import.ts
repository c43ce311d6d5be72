/**
 * Runs a Synapse import (synapse-import-job.ts) to completion in the
 * foreground, for `mxcd import synapse`:
 * - normally through the job runner, so progress is stored after every
 *   page and the job shows in `mxcd jobs`. A stopped or killed import
 *   resumes where it left off; a finished one is started afresh (a new full
 *   pass that finds every earlier row present and imports only new ones);
 * - before the first page, mxcd's quarantine feed is made to continue
 *   Synapse's (feed-continuation.ts): its position is raised to Synapse's
 *   highest stream id, and a pending `quarantine-feed-backfill` runs to the
 *   end first, so it never records an imported item a second time;
 * - with `dryRun`, page by page in transactions that are always rolled
 *   back, with the progress kept in memory: the counts are exact ("already
 *   present" included) and nothing is left in mxcd's database or store.
 */
import type { Database } from "../db/database.js";
import { JobRunner } from "../jobs/job-runner.js";
import { DEFAULT_JOB_RUNNER_OPTIONS } from "../jobs/job-runner-options.js";
import { QuarantineFeedBackfillJob } from "../jobs/quarantine-feed-backfill-job.js";
import type { Logger } from "../logging/logger.js";
import { ImportLookupRepository } from "../repositories/import-lookup-repository.js";
import { ImportedMediaRepository } from "../repositories/imported-media-repository.js";
import { ImportedPreviewRepository } from "../repositories/imported-preview-repository.js";
import { JobRepository } from "../repositories/job-repository.js";
import { QuarantineFeedRepository } from "../repositories/quarantine-feed-repository.js";
import { QuarantineRepository } from "../repositories/quarantine-repository.js";
import type { BlobStore } from "../storage/blob-store.js";
import { FilesystemBlobStore } from "../storage/filesystem/filesystem-blob-store.js";
import type { ImportTally } from "./import-report.js";
import { MediaCopier } from "./media-copier.js";
import { MediaFileProbe } from "./media-file-probe.js";
import type { MediaSource } from "./media-source.js";
import type { PreviewCacheSettings } from "./preview-cache-import.js";
import {
  initialImportProgress,
  SYNAPSE_IMPORT,
  SynapseImportJob,
  type SynapseImportProgress,
} from "./synapse-import-job.js";
import type { SynapseSource } from "./synapse-source.js";

export interface SynapseImportOptions {
  /** mxcd's database, migrated. */
  readonly database: Database;
  readonly source: SynapseSource;
  /** Synapse's `media_store_path` (also mxcd's `media_store.path` in reference mode). */
  readonly mediaStorePath: string;
  /** Names the source (sourceIdentity in synapse-source.ts plus the media store). */
  readonly sourceIdentity: string;
  readonly dryRun: boolean;
  readonly logger: Logger;
  readonly batchSize?: number;
  /** Stops after the page in flight (which rolls back). */
  readonly signal?: AbortSignal;
  /** Rows processed so far (all passes' pages committed), for a progress bar. */
  readonly onProgress?: (processed: number) => void;
  /** `--copy`: read Synapse's files from `source`, copy them into `store` (docs/import.md). */
  readonly copy?: CopyOptions;
  /** `--skip-url-cache`: count URL-preview media and the preview cache as skipped. */
  readonly skipUrlCache?: boolean;
  /**
   * mxcd's `url_preview_accept_language` (joined) and `server_name`, which key
   * imported preview-cache entries; default `en` and no server (entries then
   * keep no image media id).
   */
  readonly previewSettings?: PreviewCacheSettings;
  /**
   * Told after each commit that appended quarantine feed records, so a
   * running `mxcd serve` wakes its long-polling feed readers (a FeedSignal
   * on the database's notification bus); without it they see the records
   * at their next `notification_poll_interval`.
   */
  readonly feedSignal?: { notify(): void };
}

export interface CopyOptions {
  readonly source: MediaSource;
  /** mxcd's configured store. */
  readonly store: BlobStore;
  /** Files copied at once (default COPY_CONCURRENCY). */
  readonly concurrency?: number;
  /** Told the size of every file copied. */
  readonly onCopied?: (bytes: number) => void;
}

/** Files copied at once by `--copy`: enough to overlap disk and network waits, small for 2 cores. */
export const COPY_CONCURRENCY = 4;

export interface SynapseImportResult {
  readonly tally: ImportTally;
  /** True when `signal` stopped the import before the end. */
  readonly stopped: boolean;
}

export async function runSynapseImport(
  options: SynapseImportOptions,
): Promise<SynapseImportResult> {
  const store = new FilesystemBlobStore(options.mediaStorePath);
  const job = new SynapseImportJob({
    source: options.source,
    files: new MediaFileProbe(options.mediaStorePath),
    store,
    media: new ImportedMediaRepository(),
    dryRun: options.dryRun,
    sourceIdentity: options.sourceIdentity,
    copy: options.copy && {
      copier: new MediaCopier(options.copy.source, options.copy.store, options.copy.onCopied),
      lookup: new ImportLookupRepository(),
      concurrency: options.copy.concurrency ?? COPY_CONCURRENCY,
    },
    quarantine: new QuarantineRepository(),
    previews: new ImportedPreviewRepository(),
    previewSettings: options.previewSettings ?? { language: "en", serverName: "" },
    skipUrlCache: options.skipUrlCache ?? false,
    now: Date.now,
    ...(options.feedSignal && { feedSignal: options.feedSignal }),
  });
  const signal = options.signal ?? new AbortController().signal;
  const batchSize = options.batchSize ?? DEFAULT_JOB_RUNNER_OPTIONS.batchSize;
  if (options.dryRun) return dryRun(options.database, job, batchSize, signal, options.onProgress);

  await continueSynapseFeed(options.database, options.source);
  const jobs = new JobRepository(options.database);
  await jobs.restart(SYNAPSE_IMPORT, initialImportProgress(), Date.now());
  const runner = new JobRunner(
    options.database,
    // The backfill first (a no-op once done): see continueSynapseFeed.
    [new QuarantineFeedBackfillJob(new QuarantineRepository(), options.feedSignal), job],
    options.logger,
    { batchSize, pauseMs: 0 },
    {
      committed: (state) => {
        if (state.name === SYNAPSE_IMPORT) options.onProgress?.(state.processed);
      },
    },
  );
  await runner.run({ signal, failFast: true });
  const state = (await runner.states()).find((s) => s.name === SYNAPSE_IMPORT);
  const progress = state?.progress as SynapseImportProgress | undefined;
  return {
    tally: (progress ?? initialImportProgress()).tally,
    stopped: state?.status !== "done",
  };
}

/**
 * Raises mxcd's feed position to Synapse's highest stream id (never lowers
 * it), so the import's records and every later one come after everything a
 * consumer of Synapse's feed has seen (feed-continuation.ts). Idempotent;
 * repeated by every run, so a Synapse that recorded more since is covered.
 */
async function continueSynapseFeed(database: Database, source: SynapseSource): Promise<void> {
  const max = (await source.schema()).quarantineStreamMax;
  if (max !== null) await new QuarantineFeedRepository(database).raisePosition(max);
}

/** Thrown to roll a dry-run page back. */
class RollBack extends Error {}

async function dryRun(
  database: Database,
  job: SynapseImportJob,
  batchSize: number,
  signal: AbortSignal,
  onProgress?: (processed: number) => void,
): Promise<SynapseImportResult> {
  let progress = job.initialProgress;
  let processed = 0;
  for (;;) {
    if (signal.aborted) return { tally: progress.tally, stopped: true };
    let result: Awaited<ReturnType<SynapseImportJob["runBatch"]>> | undefined;
    await database
      .transaction(async (tx) => {
        result = await job.runBatch(tx, progress, {
          batchSize,
          engine: database.engine,
          signal,
          prepared: undefined,
        });
        throw new RollBack();
      })
      .catch((error: unknown) => {
        if (!(error instanceof RollBack) && !signal.aborted) throw error;
      });
    if (!result || signal.aborted) return { tally: progress.tally, stopped: true };
    progress = result.progress;
    processed += result.processed;
    onProgress?.(processed);
    if (result.done) return { tally: progress.tally, stopped: false };
  }
}
