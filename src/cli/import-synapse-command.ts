/**
 * `mxcd import synapse`: brings an existing Synapse media store into mxcd
 * (docs/import.md). Reference mode (the default with a filesystem store):
 * the files stay in Synapse's `media_store_path`, which must be mxcd's
 * `media_store.path`. `--copy`: every file is copied into mxcd's configured
 * store (filesystem or S3), from `--media-store` or from the bucket of
 * synapse-s3-storage-provider (`--s3-*`). `--verify`: a separate read-only
 * run that re-reads both copies of every imported item.
 * Prints a progress bar (rows, rate, ETA) on standard error and the final
 * report table on standard output; exits 1 when any file was missing or
 * mismatched (for `--verify`: any disagreement), 130 when stopped (run it
 * again to resume).
 */
import { resolve } from "node:path";
import { SingleBar } from "cli-progress";
import type { Config } from "../config/config-schema.js";
import { loadConfigFile } from "../config/load-config.js";
import { createDatabase } from "../db/database.js";
import { runMigrations } from "../db/migrate.js";
import { createNotificationBus, type NotificationBus } from "../db/notification-bus.js";
import { formatReport, totalMismatched, totalMissing } from "../importer/import-report.js";
import {
  formatVerifyReport,
  verifyDisagreements,
  verifySynapseImport,
} from "../importer/import-verify.js";
import { FilesystemMediaSource, type MediaSource } from "../importer/media-source.js";
import { runSynapseImport } from "../importer/synapse-import.js";
import {
  openSynapseSource,
  type SynapseDatabaseLocation,
  type SynapseSchema,
  sourceIdentity,
} from "../importer/synapse-source.js";
import { createLogger } from "../logging/logger.js";
import { FeedSignal } from "../media/quarantine-feed-service.js";
import type { BlobStore } from "../storage/blob-store.js";
import { createBlobStore } from "../storage/create-blob-store.js";

export interface ImportSynapseOptions {
  readonly config: string;
  readonly database?: string;
  readonly sqlite?: string;
  readonly mediaStore?: string;
  readonly reference?: boolean;
  readonly copy?: boolean;
  readonly verify?: boolean;
  readonly dryRun?: boolean;
  readonly batchSize?: string;
  readonly s3Config?: string;
  readonly s3Bucket?: string;
  readonly s3Prefix?: string;
  readonly s3EndpointUrl?: string;
  readonly s3RegionName?: string;
  readonly skipUrlCache?: boolean;
}

/** What the run does: import in place, import by copying, or check an earlier import. */
type Mode = "reference" | "copy" | "verify";

export async function importSynapseCommand(options: ImportSynapseOptions): Promise<void> {
  const location = sourceLocation(options);
  const config = loadConfigFile(options.config);
  const mode = checkMode(options, config);
  const batchSize = options.batchSize === undefined ? undefined : Number(options.batchSize);
  if (batchSize !== undefined && !(Number.isSafeInteger(batchSize) && batchSize > 0)) {
    throw new Error("--batch-size must be a positive whole number");
  }
  const files = await mediaSource(options);
  const store = mode === "reference" ? undefined : createBlobStore(config.media_store);
  const source = await openSynapseSource(location);
  const database = createDatabase(config.database);
  let notifications: NotificationBus | undefined;
  const abort = new AbortController();
  const stop = () => abort.abort();
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
  try {
    const schema = await source.schema();
    console.error(
      `Synapse schema version ${schema.version ?? "unknown"}; ` +
        `authenticated: ${schema.localAuthenticated ? "yes" : "no"}, ` +
        `sha256: ${schema.localSha256 ? "yes" : "no"}, ` +
        `quarantine change stream: ${feedSummary(schema)}`,
    );
    await runMigrations(database);
    if (mode === "verify") {
      await verify(database, source, files, store!, batchSize, abort.signal);
      return;
    }
    const total = await source.countRows();
    const logger = createLogger(config.log_level, process.stderr);
    // Wakes a running `mxcd serve`'s feed readers when the import appends records.
    if (!options.dryRun) {
      notifications = createNotificationBus(config.database, logger);
      await notifications.start();
    }
    const bar = progressBar();
    const started = Date.now();
    let copied = 0;
    bar.start(total, 0, { rate: 0 });
    const result = await runSynapseImport({
      database,
      source,
      mediaStorePath: options.mediaStore ?? ".",
      sourceIdentity: identity(location, files),
      copy: store && {
        source: files,
        store,
        onCopied: (bytes) => {
          copied += bytes;
        },
      },
      dryRun: options.dryRun ?? false,
      skipUrlCache: options.skipUrlCache ?? false,
      previewSettings: {
        language: config.url_preview_accept_language.join(", "),
        serverName: config.server_name,
      },
      logger,
      batchSize,
      ...(notifications && { feedSignal: new FeedSignal(notifications) }),
      signal: abort.signal,
      onProgress: (processed) => {
        const seconds = Math.max((Date.now() - started) / 1000, 0.001);
        bar.update(Math.min(processed, total), { rate: Math.round(processed / seconds) });
      },
    });
    bar.stop();
    if (mode === "copy" && !options.dryRun) {
      const seconds = Math.max((Date.now() - started) / 1000, 0.001);
      const mib = copied / 1024 / 1024;
      console.error(
        `copied ${mib.toFixed(1)} MiB in ${seconds.toFixed(1)} s ` +
          `(${(mib / seconds).toFixed(1)} MiB/s) into ${config.media_store.engine}`,
      );
    }
    console.log(formatReport(result.tally, options.dryRun ?? false, mode === "copy"));
    if (result.stopped) {
      console.error("stopped; run the same command again to resume");
      process.exitCode = 130;
    } else if (totalMissing(result.tally) + totalMismatched(result.tally) > 0) {
      process.exitCode = 1;
    }
  } finally {
    process.off("SIGINT", stop);
    process.off("SIGTERM", stop);
    await notifications?.stop();
    await source.close();
    await database.close();
    await files.close?.();
    await store?.close?.();
  }
}

/**
 * The mode the flags and mxcd's `media_store` ask for, or an error saying
 * what to change. Reference mode needs mxcd's store to be Synapse's folder;
 * an S3 store or an S3 source needs `--copy`.
 */
export function checkMode(options: ImportSynapseOptions, config: Config): Mode {
  const chosen = [options.reference, options.copy, options.verify].filter(Boolean).length;
  if (chosen > 1) throw new Error("--reference, --copy and --verify exclude each other");
  const s3Source = options.s3Config !== undefined || options.s3Bucket !== undefined;
  if (s3Source === (options.mediaStore !== undefined)) {
    throw new Error(
      "give exactly one media source: --media-store PATH, or --s3-config FILE / --s3-bucket NAME",
    );
  }
  if (options.verify) {
    if (options.dryRun) throw new Error("--verify reads only; --dry-run does not apply");
    return "verify";
  }
  const store = config.media_store;
  if (options.copy) {
    if (store.engine === "memory") {
      throw new Error(`--copy needs a filesystem or s3 media_store in ${options.config}`);
    }
    if (
      !s3Source &&
      store.engine === "filesystem" &&
      resolve(store.path) === resolve(options.mediaStore!)
    ) {
      throw new Error(
        "--copy would copy the media store onto itself: mxcd's media_store is --media-store; " +
          "use --reference (the files stay where they are) or point media_store elsewhere",
      );
    }
    return "copy";
  }
  if (store.engine === "s3") {
    throw new Error(
      `mxcd's media_store in ${options.config} is S3: reference mode cannot serve Synapse's ` +
        "files from there; use --copy to copy them into the bucket",
    );
  }
  if (s3Source) {
    throw new Error("media in S3 (--s3-*) is imported with --copy only");
  }
  if (store.engine !== "filesystem" || resolve(store.path) !== resolve(options.mediaStore!)) {
    throw new Error(
      "reference mode leaves the files where Synapse put them: media_store must be " +
        `{engine: filesystem, path: ${resolve(options.mediaStore!)}} in ${options.config} ` +
        "(or copy them with --copy)",
    );
  }
  return "reference";
}

/** Synapse's files: its folder, or the provider's bucket (the AWS SDK loads only then). */
async function mediaSource(options: ImportSynapseOptions): Promise<MediaSource> {
  if (options.mediaStore !== undefined) return new FilesystemMediaSource(options.mediaStore);
  const { loadS3SourceConfig, S3MediaSource } = await import("../importer/s3-media-source.js");
  return new S3MediaSource(
    loadS3SourceConfig(options.s3Config, {
      bucket: options.s3Bucket,
      prefix: options.s3Prefix,
      endpoint_url: options.s3EndpointUrl,
      region_name: options.s3RegionName,
    }),
  );
}

/** Names the source database and files (no credentials): an unfinished import never mixes two. */
function identity(location: SynapseDatabaseLocation, files: MediaSource): string {
  if (files instanceof FilesystemMediaSource) return sourceIdentity(location, files.description);
  return sourceIdentity(location, "/").replace(/ with \/$/, ` with ${files.description}`);
}

/** `--verify`: prints the verify table; exit status 1 on any disagreement, 130 when stopped. */
async function verify(
  database: ReturnType<typeof createDatabase>,
  source: Awaited<ReturnType<typeof openSynapseSource>>,
  files: MediaSource,
  store: BlobStore,
  batchSize: number | undefined,
  signal: AbortSignal,
): Promise<void> {
  const total = await source.countRows();
  const bar = progressBar();
  const started = Date.now();
  bar.start(total, 0, { rate: 0 });
  const result = await verifySynapseImport({
    database,
    source,
    files,
    store,
    batchSize,
    signal,
    onProgress: (processed) => {
      const seconds = Math.max((Date.now() - started) / 1000, 0.001);
      bar.update(Math.min(processed, total), { rate: Math.round(processed / seconds) });
    },
  });
  bar.stop();
  console.log(formatVerifyReport(result));
  if (result.stopped) {
    console.error("stopped before the end");
    process.exitCode = 130;
  } else if (verifyDisagreements(result) > 0) {
    process.exitCode = 1;
  }
}

/** The progress bar of an import or a verify run, on standard error. */
function progressBar(): SingleBar {
  return new SingleBar({
    format: "{bar} {percentage}% | {value}/{total} rows | {rate} rows/s | ETA {eta_formatted}",
    noTTYOutput: true,
    notTTYSchedule: 5000,
    stream: process.stderr,
  });
}

/** The schema line's feed part: where mxcd's feed continues Synapse's. */
function feedSummary(schema: SynapseSchema): string {
  if (!schema.quarantineChanges) return "no (every quarantined item gets a feed record)";
  const max = schema.quarantineStreamMax;
  return max === null
    ? "yes, empty"
    : `yes, up to stream id ${max} (mxcd's feed continues above it)`;
}

function sourceLocation(options: ImportSynapseOptions): SynapseDatabaseLocation {
  if ((options.database === undefined) === (options.sqlite === undefined)) {
    throw new Error("give exactly one of --database postgres://... or --sqlite PATH");
  }
  return options.sqlite !== undefined
    ? { sqlite: options.sqlite }
    : { postgres: options.database! };
}
