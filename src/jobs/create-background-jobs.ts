/**
 * The one list of mxcd's background jobs, in the order they run. Both the
 * server (src/app.ts) and `mxcd jobs` build their runner from it, so the
 * CLI sees and runs exactly what the server would.
 */
import type { Database } from "../db/database.js";
import type { HomeserverRoomHistory } from "../homeserver/homeserver-room-history.js";
import { RoomEventIndexer } from "../homeserver/room-event-indexer.js";
import type { Logger } from "../logging/logger.js";
import { AppServiceEventRepository } from "../repositories/app-service-event-repository.js";
import { MediaReferenceRepository } from "../repositories/media-reference-repository.js";
import { QuarantineRepository } from "../repositories/quarantine-repository.js";
import { RoomHistoryBackfillRepository } from "../repositories/room-history-backfill-repository.js";
import type { AnyJob } from "./background-job.js";
import type { BlurPreviewBackfillJob } from "./blur-preview-backfill-job.js";
import type { MediaHashBackfillJob } from "./media-hash-backfill-job.js";
import type { MediaRetentionJob } from "./media-retention-job.js";
import type { NearDuplicateCheckJob } from "./near-duplicate-check-job.js";
import { QuarantineFeedBackfillJob } from "./quarantine-feed-backfill-job.js";
import { RoomHistoryBackfillJob } from "./room-history-backfill-job.js";
import type { UrlPreviewExpiryJob } from "./url-preview-expiry-job.js";

/** What the jobs need from the process that runs them. */
export interface BackgroundJobDeps {
  /** Wakes this process's quarantine-feed long-polls; absent in the CLI. */
  readonly feedSignal?: { notify(): void };
  /**
   * The room-history backfill's homeserver reader; absent when the backfill
   * is off (src/homeserver/room-history-backfill.ts), and then the job is
   * not listed.
   */
  readonly roomHistory?: {
    readonly history: HomeserverRoomHistory;
    readonly database: Database;
    readonly logger: Logger;
  };
  /** The recurring URL-preview expiry (src/previews/create-url-previews.ts); absent when previews are off. */
  readonly urlPreviewExpiry?: UrlPreviewExpiryJob;
  /**
   * The recurring MD5/PDQ backfill (src/media/create-media-hashing.ts); the
   * server and `mxcd jobs` always pass it, tests building a partial list may not.
   */
  readonly mediaHashBackfill?: MediaHashBackfillJob;
  /** The recurring media retention (src/jobs/create-media-retention.ts); absent when every rule is off. */
  readonly mediaRetention?: MediaRetentionJob;
  /**
   * The recurring near-duplicate check over the PDQ hash log
   * (src/jobs/create-near-duplicate-check.ts), after the backfill so that
   * `mxcd jobs run` checks what the backfill recorded.
   */
  readonly nearDuplicateCheck?: NearDuplicateCheckJob;
  /**
   * The recurring blur-preview backfill (src/jobs/create-blur-preview-backfill.ts);
   * absent when `enable_blur_preview_backfill` is off.
   */
  readonly blurPreviewBackfill?: BlurPreviewBackfillJob;
}

/** Every background job, in run order. Append new jobs at the end. */
export function createBackgroundJobs(deps: BackgroundJobDeps = {}): AnyJob[] {
  const jobs: AnyJob[] = [
    new QuarantineFeedBackfillJob(new QuarantineRepository(), deps.feedSignal),
  ];
  const roomHistory = deps.roomHistory;
  if (roomHistory) {
    const { database } = roomHistory;
    jobs.push(
      new RoomHistoryBackfillJob({
        history: roomHistory.history,
        rooms: new RoomHistoryBackfillRepository(database),
        indexer: new RoomEventIndexer(
          new AppServiceEventRepository(),
          new MediaReferenceRepository(database),
        ),
        logger: roomHistory.logger,
        now: Date.now,
      }),
    );
  }
  if (deps.urlPreviewExpiry) jobs.push(deps.urlPreviewExpiry);
  if (deps.mediaHashBackfill) jobs.push(deps.mediaHashBackfill);
  if (deps.nearDuplicateCheck) jobs.push(deps.nearDuplicateCheck);
  if (deps.mediaRetention) jobs.push(deps.mediaRetention);
  if (deps.blurPreviewBackfill) jobs.push(deps.blurPreviewBackfill);
  return jobs;
}
