/**
 * `mxcd media retention` (docs/media.md "Retention"): with `--dry-run`, lists
 * what the `media-retention` job would delete now — one line per item (mxc
 * URI, bytes, rule, age) and a summary — and changes nothing; without it,
 * runs one pass of that same job in the foreground (same lock, same stored
 * progress, same deletion path as the server), then prints its counts.
 */

import { MediaChanges } from "../cache/media-changes.js";
import type { Config } from "../config/config-schema.js";
import { loadConfigFile } from "../config/load-config.js";
import type { Database } from "../db/database.js";
import { createDatabase } from "../db/database.js";
import { runMigrations } from "../db/migrate.js";
import { createNotificationBus } from "../db/notification-bus.js";
import { createMediaRetention, retentionSettingsOf } from "../jobs/create-media-retention.js";
import { JobRunner } from "../jobs/job-runner.js";
import { plannedDeletions } from "../jobs/media-retention-dry-run.js";
import {
  MEDIA_RETENTION,
  type MediaRetentionJob,
  type MediaRetentionProgress,
  retentionEnabled,
} from "../jobs/media-retention-job.js";
import { createLogger, type Logger } from "../logging/logger.js";
import { MediaDeletionService } from "../media/media-deletion-service.js";
import { JobRepository } from "../repositories/job-repository.js";
import { MediaAdminRepository } from "../repositories/media-admin-repository.js";
import { MediaReferenceRepository } from "../repositories/media-reference-repository.js";
import { MediaRetentionRepository } from "../repositories/media-retention-repository.js";
import type { BlobStore } from "../storage/blob-store.js";
import { createBlobStore } from "../storage/create-blob-store.js";

/**
 * The retention job for a CLI process (`mxcd jobs`, `mxcd media retention`),
 * deleting through MediaDeletionService like the server. On PostgreSQL its
 * cache invalidations reach running servers over NOTIFY (`bus`, started by
 * the caller); on SQLite a server's caches forget deleted media within
 * `media_cache.metadata_ttl`.
 */
export function createCliMediaRetention(
  config: Config,
  deps: { database: Database; store: BlobStore; logger: Logger; mediaChanges: MediaChanges },
): MediaRetentionJob | undefined {
  const deletion = new MediaDeletionService(
    { serverName: config.server_name },
    new MediaAdminRepository(deps.database, deps.mediaChanges),
    new MediaReferenceRepository(deps.database),
    deps.store,
    deps.logger,
  );
  return createMediaRetention(config, { deletion, logger: deps.logger });
}

/** `mxcd media retention [--dry-run]`. */
export async function mediaRetentionCommand(options: {
  config: string;
  dryRun?: boolean;
}): Promise<void> {
  const config = loadConfigFile(options.config);
  const settings = retentionSettingsOf(config);
  const logger = createLogger(config.log_level, process.stderr);
  const database = createDatabase(config.database);
  const store = createBlobStore(config.media_store);
  const bus = createNotificationBus(config.database, logger);
  try {
    await runMigrations(database);
    if (options.dryRun) {
      const stored = await new JobRepository(database).get(MEDIA_RETENTION);
      const progress = stored?.progress as MediaRetentionProgress | undefined;
      if (!retentionEnabled(settings)) console.log("media_retention: every rule is off");
      await printPlan(database, config, settings, progress);
      return;
    }
    await bus.start();
    const mediaChanges = new MediaChanges(bus);
    const job = createCliMediaRetention(config, { database, store, logger, mediaChanges });
    if (!job) {
      console.log("media_retention: every rule is off; nothing to do");
      return;
    }
    await new JobRunner(database, [job], logger).run({ failFast: true });
    const { deleted, bytes, failed } = job.stats;
    console.log(
      `deleted ${deleted.local} local media (${bytes.local} bytes) and ` +
        `${deleted.remote} remote media (${bytes.remote} bytes); ${failed} could not be deleted`,
    );
  } finally {
    await bus.stop();
    await store.close?.();
    await database.close();
  }
}

/** Prints one tab-separated line per item that would go, then a summary. */
async function printPlan(
  database: Database,
  config: Config,
  settings: ReturnType<typeof retentionSettingsOf>,
  progress: MediaRetentionProgress | undefined,
): Promise<void> {
  const now = Date.now();
  const repository = new MediaRetentionRepository(config.server_name);
  const totals = { local: { items: 0, bytes: 0 }, remote: { items: 0, bytes: 0 } };
  let marked = 0;
  for await (const item of plannedDeletions(database.db, repository, settings, now, progress)) {
    const age = formatAge(now - item.ts);
    const reason = item.marked ? `${item.rule} (marked by an unfinished batch)` : item.rule;
    const when =
      item.rule === "local_last_access" || item.kind === "remote" ? "accessed" : "created";
    const uri = printable(`mxc://${item.origin}/${item.mediaId}`);
    console.log(`${uri}\t${item.length}\t${reason}\t${when} ${age} ago`);
    totals[item.kind].items += 1;
    totals[item.kind].bytes += item.length;
    if (item.marked) marked += 1;
  }
  const { local, remote } = totals;
  console.log(
    `would delete ${local.items} local media (${local.bytes} bytes) and ` +
      `${remote.items} remote media (${remote.bytes} bytes)` +
      (marked > 0 ? `, ${marked} of them marked by an unfinished batch` : ""),
  );
}

/**
 * `text` safe for one tab-separated terminal line: control characters (a
 * newline or tab would split the line, ESC or C1 CSI would drive the
 * terminal), bidi overrides and the backslash itself escaped as `\uXXXX` /
 * `\\`. Ids read from the database may hold anything (a Synapse import, a
 * hand edit); the ones mxcd makes print unchanged.
 */
export function printable(text: string): string {
  return text.replace(
    // biome-ignore lint/suspicious/noControlCharactersInRegex: escaping them is the point.
    /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069\\]/g,
    (c) => (c === "\\" ? "\\\\" : `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`),
  );
}

/** `3d 4h`, `5h 2m`, `40s`: the two largest units. */
function formatAge(ms: number): string {
  const units: [string, number][] = [
    ["d", 86_400_000],
    ["h", 3_600_000],
    ["m", 60_000],
    ["s", 1000],
  ];
  const parts: string[] = [];
  let rest = Math.max(0, ms);
  for (const [unit, size] of units) {
    const count = Math.floor(rest / size);
    if (count > 0 || parts.length > 0 || unit === "s") parts.push(`${count}${unit}`);
    rest -= count * size;
    if (parts.length === 2) break;
  }
  return parts.join(" ");
}
