/**
 * `GET /_synapse/admin/v1/background_updates/status` (Synapse's Background
 * Updates API, docs/usage/administration/admin_api/background_updates.md):
 * `enabled` (always true: mxcd has no pause switch) and `current_updates`,
 * keyed by database name ("master", as Synapse names its only database),
 * holding the job in progress, if any. mxcd reads that from the database,
 * so every process answers alike whichever one runs the job, and adds
 * `jobs`: every job's stored state (docs/jobs.md).
 */
import type { FastifyInstance } from "fastify";
import type { JobState } from "../../jobs/job-runner.js";
import type { Auth } from "../auth.js";

/** Synapse's name for a deployment's single database. */
const DATABASE_NAME = "master";

/** Registers the status route; `jobs` is the JobRunner (any reader of job states). */
export function registerBackgroundJobsRoutes(
  app: FastifyInstance,
  deps: { auth: Auth; jobs: { states(): Promise<JobState[]> } },
): void {
  app.get("/_synapse/admin/v1/background_updates/status", async (request) => {
    await deps.auth.requireAdmin(request);
    const states = await deps.jobs.states();
    const current = currentJob(states);
    return {
      enabled: true,
      current_updates: current ? { [DATABASE_NAME]: currentUpdate(current) } : {},
      jobs: states.map((s) => ({
        name: s.name,
        status: s.status,
        processed: s.processed,
        total: s.total,
        started_ts: s.startedTs,
        updated_ts: s.updatedTs,
        completed_ts: s.completedTs,
        last_error: s.lastError,
      })),
    };
  });
}

/**
 * The started, unfinished job most recently worked on. Recurring jobs
 * (url-preview-expiry, media-hash-backfill) are never finished: they are
 * maintenance, not an update in progress, and are listed in `jobs` only.
 */
function currentJob(states: readonly JobState[]): JobState | undefined {
  const running = states.filter((s) => s.status === "running" && s.recurring !== true);
  return running.sort((a, b) => b.updatedTs - a.updatedTs)[0];
}

/**
 * Synapse's fields. Its `total_duration_ms` is time spent in batches (not
 * sleeping); mxcd's is summed over every process and restart. Its average
 * is exponential; mxcd's is the plain mean over that time.
 */
function currentUpdate(job: JobState) {
  return {
    name: job.name,
    total_item_count: job.processed,
    total_duration_ms: job.durationMs,
    average_items_per_ms: job.durationMs > 0 ? job.processed / job.durationMs : 0,
  };
}
