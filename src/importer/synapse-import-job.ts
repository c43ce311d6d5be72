/**
 * `synapse-import`: brings a Synapse media store's metadata into mxcd, as a
 * background job (src/jobs/background-job.ts) that the `mxcd import
 * synapse` command runs in the foreground (docs/import.md).
 *
 * Design note. The walk is two keyset-paged phases over the read-only
 * source (synapse-source.ts): local media by `media_id`, then the remote
 * cache by `(media_origin, media_id)`; each page's thumbnails come with it.
 * Every row's file is probed in the media store (reference mode: the files
 * stay where Synapse put them, and mxcd's filesystem store reads that very
 * layout). A page's rows are collected while their files are probed and
 * inserted together at its end, in multi-row statements (import-page.ts).
 * Each page is one batch: its inserts and the new progress (keyset
 * position, counts, problem list) commit together, so an import stopped or
 * killed at any moment resumes after the last committed page with nothing
 * done twice; and inserts ignore rows already there, so a later full pass
 * (a re-run after Synapse got more media) imports only the new rows.
 *
 * Quarantined rows without a `sha256` get one computed from their file
 * (hash quarantine needs it); other rows keep Synapse's value, NULL or not.
 *
 * Not imported: `/create`d ids that never got bytes and URL-preview media
 * (counted as skipped), rows whose file is missing, truncated or unreadable
 * (counted and listed: an mxcd row would promise bytes that are not there).
 * A remote thumbnail stored under Synapse's legacy name (no `-method`) is
 * copied to the current name beside it, since mxcd looks only that up; the
 * legacy file is left in place.
 */
import type { Tx } from "../db/database.js";
import type { BackgroundJob, BatchContext, BatchResult } from "../jobs/background-job.js";
import type { ImportedMediaRepository } from "../repositories/imported-media-repository.js";
import type { BlobStore } from "../storage/blob-store.js";
import {
  localContentKey,
  localThumbnailKey,
  remoteContentKey,
  remoteThumbnailKey,
  remoteThumbnailLegacyKey,
} from "../storage/media-paths.js";
import { ImportPage } from "./import-page.js";
import { count, emptyTally, type ImportKind, type ImportTally, missing } from "./import-report.js";
import type { MediaFileProbe } from "./media-file-probe.js";
import type {
  SynapseLocalMedia,
  SynapseRemoteMedia,
  SynapseSource,
  SynapseThumbnail,
} from "./synapse-source.js";

/** The job's name: its row in `background_jobs` (shown by `mxcd jobs`) and its lock. */
export const SYNAPSE_IMPORT = "synapse-import";

/** Where the walk is, and what it has counted so far (stored as JSON). */
export interface SynapseImportProgress {
  readonly phase: "local" | "remote";
  readonly lastLocalMediaId: string;
  readonly lastRemoteOrigin: string;
  readonly lastRemoteMediaId: string;
  /** Which source this walk reads (sourceIdentity); "" before the first batch. */
  readonly source?: string;
  readonly tally: ImportTally;
}

export interface SynapseImportDeps {
  readonly source: SynapseSource;
  /** Probes files in Synapse's media store. */
  readonly files: MediaFileProbe;
  /** The same directory as a blob store, for copying legacy thumbnail names. */
  readonly store: BlobStore;
  readonly media: ImportedMediaRepository;
  /** Counts and probes only: no copy (the caller also rolls every batch back). */
  readonly dryRun: boolean;
  /** Names the source database and media store (no secrets): a walk never mixes two. */
  readonly sourceIdentity: string;
}

export function initialImportProgress(): SynapseImportProgress {
  return {
    phase: "local",
    lastLocalMediaId: "",
    lastRemoteOrigin: "",
    lastRemoteMediaId: "",
    tally: emptyTally(),
  };
}

/** The import described above. */
export class SynapseImportJob implements BackgroundJob<SynapseImportProgress> {
  readonly name = SYNAPSE_IMPORT;
  readonly initialProgress = initialImportProgress();

  constructor(private readonly deps: SynapseImportDeps) {}

  /** Rows of the two source tables (thumbnails come with their media). */
  estimateTotal(): Promise<number> {
    return this.deps.source.countRows();
  }

  async runBatch(
    tx: Tx,
    progress: SynapseImportProgress,
    { batchSize, signal }: BatchContext,
  ): Promise<BatchResult<SynapseImportProgress>> {
    const stored = progress.source ?? "";
    if (stored !== "" && stored !== this.deps.sourceIdentity) {
      // Keyset positions of one source mean nothing in another.
      throw new Error(
        `an unfinished import from ${stored} is stored: finish it with the same --database/--sqlite and --media-store first`,
      );
    }
    progress = { ...progress, source: this.deps.sourceIdentity };
    // A copy: the stored progress changes only if this batch commits.
    const tally = structuredClone(progress.tally);
    if (progress.phase === "local") {
      const rows = await this.deps.source.localPage(progress.lastLocalMediaId, batchSize);
      const thumbs = await this.deps.source.localThumbnails(rows.map((r) => r.mediaId));
      const page = new ImportPage();
      for (const row of rows) {
        signal.throwIfAborted();
        await this.#local(page, row, thumbs, tally);
      }
      await page.write(tx, this.deps.media, tally);
      const last = rows.at(-1);
      const finished = rows.length < batchSize;
      return {
        progress: {
          ...progress,
          phase: finished ? "remote" : "local",
          lastLocalMediaId: last?.mediaId ?? progress.lastLocalMediaId,
          tally,
        },
        processed: rows.length,
        done: false,
      };
    }
    const rows = await this.deps.source.remotePage(
      { origin: progress.lastRemoteOrigin, mediaId: progress.lastRemoteMediaId },
      batchSize,
    );
    const page = new ImportPage();
    for (const [origin, group] of groupBy(rows, (r) => r.origin)) {
      const ids = group.map((r) => r.mediaId);
      const thumbs = await this.deps.source.remoteThumbnails(origin, ids);
      for (const row of group) {
        signal.throwIfAborted();
        await this.#remote(page, row, thumbs, tally);
      }
    }
    await page.write(tx, this.deps.media, tally);
    const last = rows.at(-1);
    return {
      progress: {
        ...progress,
        lastRemoteOrigin: last?.origin ?? progress.lastRemoteOrigin,
        lastRemoteMediaId: last?.mediaId ?? progress.lastRemoteMediaId,
        tally,
      },
      processed: rows.length,
      done: rows.length < batchSize,
    };
  }

  async #local(
    page: ImportPage,
    row: SynapseLocalMedia,
    thumbs: SynapseThumbnail[],
    tally: ImportTally,
  ) {
    const mine = thumbs.filter((t) => t.mediaId === row.mediaId);
    const item = row.mediaId;
    // A `/create`d id that never got bytes, or URL-preview media (files under url_cache/).
    if (row.mediaLength === null || row.urlCache !== null) {
      count(tally, "local", "skipped");
      for (const _ of mine) count(tally, "local_thumbnail", "skipped");
      return;
    }
    const problem = await this.#check(() => localContentKey(row.mediaId), row.mediaLength);
    if (problem) {
      missing(tally, "local", item, problem);
      for (const _ of mine) count(tally, "local_thumbnail", "skipped");
      return;
    }
    page.addLocal({
      ...row,
      mediaLength: row.mediaLength,
      sha256: await this.#hashOf(row, () => localContentKey(row.mediaId)),
    });
    for (const t of mine) {
      await this.#thumbnail(page, t, tally, "local_thumbnail", () =>
        localThumbnailKey(t.mediaId, t.width, t.height, t.contentType, t.method),
      );
    }
  }

  async #remote(
    page: ImportPage,
    row: SynapseRemoteMedia,
    thumbs: SynapseThumbnail[],
    tally: ImportTally,
  ) {
    const mine = thumbs.filter((t) => t.mediaId === row.mediaId);
    const item = `${row.origin}/${row.mediaId}`;
    if (row.mediaLength === null) {
      count(tally, "remote", "skipped");
      for (const _ of mine) count(tally, "remote_thumbnail", "skipped");
      return;
    }
    const key = () => remoteContentKey(row.origin, row.filesystemId);
    const problem = await this.#check(key, row.mediaLength);
    if (problem) {
      missing(tally, "remote", item, problem);
      for (const _ of mine) count(tally, "remote_thumbnail", "skipped");
      return;
    }
    page.addRemote({
      ...row,
      mediaLength: row.mediaLength,
      sha256: await this.#hashOf(row, key),
      // mxcd's column is NOT NULL; Synapse sets it at insert, so NULL is rare.
      lastAccessTs: row.lastAccessTs ?? row.createdTs,
    });
    for (const t of mine) {
      const fsId = t.filesystemId ?? row.filesystemId;
      await this.#thumbnail(
        page,
        t,
        tally,
        "remote_thumbnail",
        () => remoteThumbnailKey(row.origin, fsId, t.width, t.height, t.contentType, t.method),
        () => remoteThumbnailLegacyKey(row.origin, fsId, t.width, t.height, t.contentType),
      );
    }
  }

  /** Checks (and, for a legacy name, copies) a thumbnail's file, then adds it to the page. */
  async #thumbnail(
    page: ImportPage,
    t: SynapseThumbnail,
    tally: ImportTally,
    kind: ImportKind,
    key: () => string,
    legacyKey?: () => string,
  ): Promise<void> {
    const item = `${t.origin === null ? "" : `${t.origin}/`}${t.mediaId} ${t.width}x${t.height} ${t.contentType} ${t.method}`;
    let problem = await this.#check(key, t.length);
    if (problem === "missing" && legacyKey) {
      const legacyProblem = await this.#check(legacyKey, t.length);
      if (legacyProblem === undefined) {
        if (!this.deps.dryRun) {
          await this.deps.store.write(key(), await this.deps.store.read(legacyKey()));
        }
        problem = undefined;
      } else if (legacyProblem !== "missing") {
        problem = `${legacyProblem} (legacy name)`;
      }
    }
    if (problem) {
      missing(tally, kind, item, problem);
      return;
    }
    page.addThumbnail(t);
  }

  /**
   * The row's `sha256`; for quarantined media without one (stored before
   * Synapse hashed, or a schema before 91) it is computed from the file, so
   * a new upload of the same bytes is still quarantined by hash. Other rows
   * keep NULL: hashing every file is `--copy`'s work, not reference mode's.
   */
  async #hashOf(
    row: { quarantinedBy: string | null; sha256: string | null },
    key: () => string,
  ): Promise<string | null> {
    if (row.sha256 !== null || row.quarantinedBy === null) return row.sha256;
    // The file was just probed; a read failing now is no reason to stop the import.
    return this.deps.files.sha256(key()).catch(() => null);
  }

  /** The file's problem, or undefined; an id that is not a safe path is a problem too. */
  async #check(key: () => string, expected: number): Promise<string | undefined> {
    let path: string;
    try {
      path = key();
    } catch {
      return "id or origin is not a safe path component";
    }
    return this.deps.files.check(path, expected);
  }
}

function groupBy<T>(items: readonly T[], by: (item: T) => string): Map<string, T[]> {
  const groups = new Map<string, T[]>();
  for (const item of items) {
    const key = by(item);
    const group = groups.get(key);
    if (group) group.push(item);
    else groups.set(key, [item]);
  }
  return groups;
}
