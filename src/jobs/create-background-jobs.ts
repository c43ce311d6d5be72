/**
 * The one list of mxcd's background jobs, in the order they run. Both the
 * server (src/app.ts) and `mxcd jobs` build their runner from it, so the
 * CLI sees and runs exactly what the server would.
 */
import { QuarantineRepository } from "../repositories/quarantine-repository.js";
import type { BackgroundJob } from "./background-job.js";
import { QuarantineFeedBackfillJob } from "./quarantine-feed-backfill-job.js";

/** What the jobs need from the process that runs them. */
export interface BackgroundJobDeps {
  /** Wakes this process's quarantine-feed long-polls; absent in the CLI. */
  readonly feedSignal?: { notify(): void };
}

/** Every background job, in run order. Append new jobs at the end. */
export function createBackgroundJobs(deps: BackgroundJobDeps = {}): BackgroundJob[] {
  return [new QuarantineFeedBackfillJob(new QuarantineRepository(), deps.feedSignal)];
}
