/**
 * `mxcd jobs` lists the background jobs (docs/jobs.md) with their status
 * and a progress bar; `mxcd jobs run` runs the unfinished ones to completion
 * in the foreground with live bars. Running beside a server is safe: the
 * job lock lets one process at a time do a job's batches, and both resume
 * from the progress stored in the database.
 */
import cliProgress from "cli-progress";
import { MediaChanges } from "../cache/media-changes.js";
import { loadConfigFile } from "../config/load-config.js";
import { createDatabase, type Database } from "../db/database.js";
import { runMigrations } from "../db/migrate.js";
import { createNotificationBus } from "../db/notification-bus.js";
import { createRoomHistorySource } from "../homeserver/room-history-backfill.js";
import { createBackgroundJobs } from "../jobs/create-background-jobs.js";
import { createBlurPreviewBackfill } from "../jobs/create-blur-preview-backfill.js";
import { createDetachedNearDuplicateCheck } from "../jobs/create-near-duplicate-check.js";
import { type JobObserver, JobRunner, type JobState } from "../jobs/job-runner.js";
import { createLogger } from "../logging/logger.js";
import { createMediaHashing } from "../media/create-media-hashing.js";
import { createBlobStore } from "../storage/create-blob-store.js";
import { Thumbnailer } from "../thumbnails/thumbnailer.js";
import { Semaphore } from "../util/semaphore.js";
import { createCliMediaRetention } from "./media-retention-command.js";

const BAR_SIZE = 30;

/** `mxcd jobs`: prints every job's status, progress bar and last error. */
export async function jobsCommand(configPath: string): Promise<void> {
  await withRunner(configPath, {}, async (runner) => {
    const states = await runner.states();
    const width = nameWidth(states);
    for (const state of states) console.log(describe(state, width, process.stdout.isTTY));
  });
}

/** `mxcd jobs run`: runs unfinished jobs to completion; Ctrl-C stops after the current batch. */
export async function jobsRunCommand(configPath: string): Promise<void> {
  const live = process.stderr.isTTY ? new LiveBars() : undefined;
  const abort = new AbortController();
  const stop = () => abort.abort();
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
  try {
    await withRunner(configPath, live?.observer() ?? {}, async (runner) => {
      live?.show(await runner.states());
      try {
        await runner.run({ signal: abort.signal, failFast: true });
      } finally {
        live?.stop();
      }
      const states = await runner.states();
      const width = nameWidth(states);
      for (const state of states) console.log(describe(state, width, process.stdout.isTTY));
    });
  } finally {
    process.off("SIGINT", stop);
    process.off("SIGTERM", stop);
  }
  if (abort.signal.aborted) {
    console.error("stopped; `mxcd jobs run` resumes where this left off");
    process.exitCode = 130;
  }
}

/** Opens the configured database (migrated), builds the server's job list, and closes it after. */
async function withRunner(
  configPath: string,
  observer: JobObserver,
  work: (runner: JobRunner, database: Database) => Promise<void>,
): Promise<void> {
  const config = loadConfigFile(configPath);
  const database = createDatabase(config.database);
  // Attached with an admin token: the room-history backfill asks the homeserver.
  const source = createRoomHistorySource(config);
  const store = createBlobStore(config.media_store);
  const logger = createLogger(config.log_level, process.stderr);
  const bus = createNotificationBus(config.database, logger);
  try {
    await runMigrations(database);
    await bus.start();
    const roomHistory = source && { history: source.history, database, logger };
    // The media-hash backfill reads the media store, and decodes no more
    // images at once than the server's thumbnailer would.
    const decodeSlots = new Semaphore(config.max_thumbnail_concurrency);
    const { backfill } = createMediaHashing(config, {
      database,
      store,
      slots: { withSlot: (fn, signal) => decodeSlots.run(fn, signal) },
      logger,
    });
    // Media retention deletes through the server's deletion path; on
    // PostgreSQL its cache invalidations reach running servers.
    const mediaChanges = new MediaChanges(bus);
    const mediaRetention = createCliMediaRetention(config, {
      database,
      store,
      logger,
      mediaChanges,
    });
    // Checks what the backfill recorded against quarantined images, as the
    // server does; its feed wake-ups and cache invalidations reach servers by the bus.
    const nearCheck = createDetachedNearDuplicateCheck(config, { database, bus, logger });
    // Blur previews under a thumbnailer of the server's limits (docs/console.md).
    const blurPreviewBackfill = createBlurPreviewBackfill(config, {
      database,
      store,
      thumbnailer: new Thumbnailer({
        maxImagePixels: config.max_image_pixels,
        concurrency: config.max_thumbnail_concurrency,
        maxFrames: config.max_thumbnail_frames,
        timeoutSeconds: config.thumbnail_timeout / 1000,
      }),
      logger,
    });
    const jobs = createBackgroundJobs({
      mediaHashBackfill: backfill,
      ...(blurPreviewBackfill && { blurPreviewBackfill }),
      nearDuplicateCheck: nearCheck.job,
      ...(mediaRetention && { mediaRetention }),
      ...(roomHistory && { roomHistory }),
    });
    const runner = new JobRunner(database, jobs, logger, {}, observer);
    await work(runner, database);
  } finally {
    source?.close();
    await bus.stop();
    await store.close?.();
    await database.close();
  }
}

/** One line per job: name, status, bar, percentage, counts; then its last error. */
function describe(state: JobState, width: number, tty: boolean): string {
  const total = state.status === "done" ? state.processed : state.total;
  const fraction = total === null ? 0 : total === 0 ? 1 : Math.min(1, state.processed / total);
  const percent = total === null ? "  ?%" : `${Math.floor(fraction * 100)}%`.padStart(4);
  const line =
    `${state.name.padEnd(width)}  ${state.status.padEnd(7)}  [${bar(fraction, tty)}] ` +
    `${percent}  ${state.processed}/${total ?? "?"}`;
  return state.lastError ? `${line}\n  last error: ${state.lastError}` : line;
}

/** A static bar drawn with cli-progress's own bar formatter. */
function bar(fraction: number, tty: boolean): string {
  const [complete, incomplete] = tty ? ["\u2588", "\u2591"] : ["#", "-"];
  return cliProgress.Format.BarFormat(fraction, {
    barsize: BAR_SIZE,
    barCompleteString: complete.repeat(BAR_SIZE),
    barIncompleteString: incomplete.repeat(BAR_SIZE),
    barGlue: "",
  });
}

function nameWidth(states: readonly JobState[]): number {
  return Math.max(4, ...states.map((s) => s.name.length));
}

/** Live cli-progress bars (on a terminal), one per unfinished job. */
class LiveBars {
  readonly #bars = new Map<string, cliProgress.SingleBar>();
  readonly #multi = new cliProgress.MultiBar(
    {
      format: "{name} [{bar}] {percentage}% | {value}/{total}",
      hideCursor: true,
      clearOnComplete: false,
    },
    cliProgress.Presets.shades_classic,
  );

  /** Adds a bar for each unfinished job. */
  show(states: readonly JobState[]): void {
    const width = nameWidth(states);
    for (const s of states.filter((state) => state.status !== "done")) {
      const name = s.name.padEnd(width);
      this.#bars.set(s.name, this.#multi.create(s.total ?? 0, s.processed, { name }));
    }
  }

  observer(): JobObserver {
    return {
      committed: (state) => {
        const bar = this.#bars.get(state.name);
        bar?.setTotal(state.total ?? Math.max(state.processed, 1));
        bar?.update(state.processed);
      },
    };
  }

  stop(): void {
    this.#multi.stop();
  }
}
