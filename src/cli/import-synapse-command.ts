/**
 * `mxcd import synapse`: brings an existing Synapse media store into mxcd
 * (docs/import.md). Reference mode only for now: the files stay in
 * Synapse's `media_store_path`, which must be mxcd's `media_store.path`.
 * Prints a progress bar (rows, rate, ETA) on standard error and the final
 * report table on standard output; exits 1 when any file was missing, 130
 * when stopped (run it again to resume).
 */
import { resolve } from "node:path";
import { SingleBar } from "cli-progress";
import { loadConfigFile } from "../config/load-config.js";
import { createDatabase } from "../db/database.js";
import { runMigrations } from "../db/migrate.js";
import { formatReport, totalMissing } from "../importer/import-report.js";
import { runSynapseImport } from "../importer/synapse-import.js";
import {
  openSynapseSource,
  type SynapseDatabaseLocation,
  type SynapseSchema,
  sourceIdentity,
} from "../importer/synapse-source.js";
import { createLogger } from "../logging/logger.js";

export interface ImportSynapseOptions {
  readonly config: string;
  readonly database?: string;
  readonly sqlite?: string;
  readonly mediaStore: string;
  readonly reference?: boolean;
  readonly dryRun?: boolean;
  readonly batchSize?: string;
  readonly skipUrlCache?: boolean;
}

export async function importSynapseCommand(options: ImportSynapseOptions): Promise<void> {
  const location = sourceLocation(options);
  const config = loadConfigFile(options.config);
  const store = config.media_store;
  if (store.engine !== "filesystem" || resolve(store.path) !== resolve(options.mediaStore)) {
    throw new Error(
      "reference mode leaves the files where Synapse put them: media_store must be " +
        `{engine: filesystem, path: ${resolve(options.mediaStore)}} in ${options.config}`,
    );
  }
  const batchSize = options.batchSize === undefined ? undefined : Number(options.batchSize);
  if (batchSize !== undefined && !(Number.isSafeInteger(batchSize) && batchSize > 0)) {
    throw new Error("--batch-size must be a positive whole number");
  }
  const source = await openSynapseSource(location);
  const database = createDatabase(config.database);
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
    const total = await source.countRows();
    const bar = new SingleBar({
      format: "{bar} {percentage}% | {value}/{total} rows | {rate} rows/s | ETA {eta_formatted}",
      noTTYOutput: true,
      notTTYSchedule: 5000,
      stream: process.stderr,
    });
    const started = Date.now();
    bar.start(total, 0, { rate: 0 });
    const result = await runSynapseImport({
      database,
      source,
      mediaStorePath: options.mediaStore,
      sourceIdentity: sourceIdentity(location, options.mediaStore),
      dryRun: options.dryRun ?? false,
      skipUrlCache: options.skipUrlCache ?? false,
      previewSettings: {
        language: config.url_preview_accept_language.join(", "),
        serverName: config.server_name,
      },
      logger: createLogger(config.log_level, process.stderr),
      batchSize,
      signal: abort.signal,
      onProgress: (processed) => {
        const seconds = Math.max((Date.now() - started) / 1000, 0.001);
        bar.update(Math.min(processed, total), { rate: Math.round(processed / seconds) });
      },
    });
    bar.stop();
    console.log(formatReport(result.tally, options.dryRun ?? false));
    if (result.stopped) {
      console.error("stopped; run the same command again to resume");
      process.exitCode = 130;
    } else if (totalMissing(result.tally) > 0) {
      process.exitCode = 1;
    }
  } finally {
    process.off("SIGINT", stop);
    process.off("SIGTERM", stop);
    await source.close();
    await database.close();
  }
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
