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
 * URL-preview media (`url_cache` set) is imported like local media, its
 * bytes and thumbnails under `url_cache/` and `url_cache_thumbnails/`; a
 * third phase then imports Synapse's unexpired preview cache
 * (preview-cache-import.ts). `skipUrlCache` skips both (counted as skipped).
 *
 * The quarantine feed continues Synapse's (feed-continuation.ts): each page
 * appends, in its own transaction, one record per newly inserted quarantined
 * row that Synapse's change stream does not report as quarantined.
 *
 * Not imported: `/create`d ids that never got bytes (counted as skipped),
 * rows whose file is missing, truncated or unreadable
 * (counted and listed: an mxcd row would promise bytes that are not there).
 * A remote thumbnail stored under Synapse's legacy name (no `-method`) is
 * copied to the current name beside it, since mxcd looks only that up; the
 * legacy file is left in place.
 *
 * With `--copy` (deps.copy) the per-file step is media-copier.ts instead:
 * every file is streamed into mxcd's store (filesystem or S3) under its mxcd
 * key, its length and SHA-256 checked on the way (a NULL `sha256` is
 * computed and stored); a file whose bytes disagree with its row is counted
 * "mismatched", listed, and not imported. The copies of one page run a few
 * at a time (deps.copy.concurrency), before the page's transaction commits,
 * so a committed row always has its object; a crash re-copies the page.
 */
import type { Tx } from "../db/database.js";
import type { BackgroundJob, BatchContext, BatchResult } from "../jobs/background-job.js";
import type { ImportLookupRepository } from "../repositories/import-lookup-repository.js";
import type { ImportedMediaRepository } from "../repositories/imported-media-repository.js";
import type { ImportedPreviewRepository } from "../repositories/imported-preview-repository.js";
import type { QuarantineRepository } from "../repositories/quarantine-repository.js";
import type { BlobStore } from "../storage/blob-store.js";
import { forEachBounded } from "./bounded-each.js";
import { missingFromStream } from "./feed-continuation.js";
import { localPlacement, remoteKey, remoteThumbnailKeys, thumbnailItem } from "./import-keys.js";
import { ImportPage } from "./import-page.js";
import {
  count,
  emptyTally,
  type ImportKind,
  type ImportTally,
  mismatched,
  missing,
} from "./import-report.js";
import type { CopyOutcome, MediaCopier } from "./media-copier.js";
import type { MediaFileProbe } from "./media-file-probe.js";
import {
  FIRST_PREVIEW_KEY,
  importPreviewPage,
  type PreviewCacheSettings,
} from "./preview-cache-import.js";
import type {
  PreviewKey,
  SynapseLocalMedia,
  SynapseRemoteMedia,
  SynapseSource,
  SynapseThumbnail,
} from "./synapse-source.js";

/** The job's name: its row in `background_jobs` (shown by `mxcd jobs`) and its lock. */
export const SYNAPSE_IMPORT = "synapse-import";

/** Where the walk is, and what it has counted so far (stored as JSON). */
export interface SynapseImportProgress {
  readonly phase: "local" | "remote" | "preview_cache";
  readonly lastLocalMediaId: string;
  readonly lastRemoteOrigin: string;
  readonly lastRemoteMediaId: string;
  /** Position in the preview cache (phase `preview_cache`); absent before it. */
  readonly lastPreview?: PreviewKey;
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
  /** Appends the feed records of imported quarantined media. */
  readonly quarantine: QuarantineRepository;
  readonly previews: ImportedPreviewRepository;
  /** How imported preview-cache entries are keyed (mxcd's language and server name). */
  readonly previewSettings: PreviewCacheSettings;
  /** `--skip-url-cache`: URL-preview media and the preview cache are counted as skipped. */
  readonly skipUrlCache: boolean;
  readonly now: () => number;
  /** Told after a page that appended feed records commits (wakes long-polling readers). */
  readonly feedSignal?: { notify(): void };
  /** `--copy`: copy every file into mxcd's store; absent in reference mode. */
  readonly copy?: CopyMode;
}

/** What `--copy` needs: the copier, a look-up of earlier runs' rows, and how many copies run at once. */
export interface CopyMode {
  readonly copier: MediaCopier;
  readonly lookup: ImportLookupRepository;
  readonly concurrency: number;
}

/** One row's file: how to name it, what it must be, and (for media) the row's hash columns. */
interface FileSpec {
  readonly key: () => string;
  /** Remote thumbnails: Synapse's older name without `-method`, tried when `key` is missing. */
  readonly legacyKey?: () => string;
  readonly length: number;
  readonly row?: { quarantinedBy: string | null; sha256: string | null };
  /** True when an earlier run already imported the row (asked in copy mode only). */
  readonly present: () => Promise<boolean>;
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
    if (progress.phase === "preview_cache")
      return this.#previewBatch(tx, progress, tally, batchSize);
    if (progress.phase === "local") {
      const rows = await this.deps.source.localPage(progress.lastLocalMediaId, batchSize);
      const thumbs = await this.deps.source.localThumbnails(rows.map((r) => r.mediaId));
      const page = new ImportPage();
      await forEachBounded(rows, this.deps.copy?.concurrency ?? 1, async (row) => {
        signal.throwIfAborted();
        await this.#local(tx, page, row, thumbs, tally);
      });
      const committed = await this.#writePage(tx, page, tally);
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
        committed,
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
      await forEachBounded(group, this.deps.copy?.concurrency ?? 1, async (row) => {
        signal.throwIfAborted();
        await this.#remote(tx, page, row, thumbs, tally);
      });
    }
    const committed = await this.#writePage(tx, page, tally);
    const last = rows.at(-1);
    const finished = rows.length < batchSize;
    return {
      progress: {
        ...progress,
        phase: finished ? "preview_cache" : "remote",
        lastRemoteOrigin: last?.origin ?? progress.lastRemoteOrigin,
        lastRemoteMediaId: last?.mediaId ?? progress.lastRemoteMediaId,
        tally,
      },
      processed: rows.length,
      done: false,
      committed,
    };
  }

  /** One page of Synapse's preview cache (preview-cache-import.ts); the last phase. */
  async #previewBatch(
    tx: Tx,
    progress: SynapseImportProgress,
    tally: ImportTally,
    batchSize: number,
  ): Promise<BatchResult<SynapseImportProgress>> {
    const { last, read } = await importPreviewPage(
      tx,
      this.deps,
      {
        after: progress.lastPreview ?? FIRST_PREVIEW_KEY,
        limit: batchSize,
        now: this.deps.now(),
        skip: this.deps.skipUrlCache,
      },
      this.deps.previewSettings,
      tally,
    );
    return {
      progress: { ...progress, lastPreview: last, tally },
      processed: read,
      done: read < batchSize,
    };
  }

  /**
   * Inserts the page's rows and the feed records of those inserted now;
   * returns what to do once the batch commits (wake the feed's readers when
   * records were appended).
   */
  async #writePage(
    tx: Tx,
    page: ImportPage,
    tally: ImportTally,
  ): Promise<(() => void) | undefined> {
    const appended = await page.writeWithFeed(
      tx,
      this.deps.media,
      this.deps.quarantine,
      tally,
      this.deps.now(),
    );
    const signal = this.deps.feedSignal;
    return appended > 0 && signal ? () => signal.notify() : undefined;
  }

  async #local(
    tx: Tx,
    page: ImportPage,
    row: SynapseLocalMedia,
    thumbs: SynapseThumbnail[],
    tally: ImportTally,
  ) {
    const mine = thumbs.filter((t) => t.mediaId === row.mediaId);
    const item = row.mediaId;
    // URL-preview media: bytes under url_cache/, thumbnails under url_cache_thumbnails/.
    const { preview, kind, thumbKind, contentKey, thumbnailKey } = localPlacement(row);
    // A `/create`d id that never got bytes, or URL-preview media with --skip-url-cache.
    if (row.mediaLength === null || (preview && this.deps.skipUrlCache)) {
      count(tally, kind, "skipped");
      for (const _ of mine) count(tally, thumbKind, "skipped");
      return;
    }
    const file = await this.#file({
      key: contentKey,
      length: row.mediaLength,
      row,
      present: async () => (await this.deps.copy?.lookup.local(tx, row.mediaId)) !== undefined,
    });
    if (!file.ok) {
      problem(tally, kind, item, file);
      for (const _ of mine) count(tally, thumbKind, "skipped");
      return;
    }
    const sha256 = file.sha256;
    page.addLocal(
      { ...row, mediaLength: row.mediaLength, sha256, md5: file.md5 ?? null },
      kind,
      missingFromStream(row)
        ? { origin: null, mediaId: row.mediaId, sha256, quarantinedBy: row.quarantinedBy }
        : undefined,
    );
    for (const t of mine) {
      await this.#thumbnail(tx, page, t, tally, thumbKind, () => thumbnailKey(t));
    }
  }

  async #remote(
    tx: Tx,
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
    const file = await this.#file({
      key: () => remoteKey(row),
      length: row.mediaLength,
      row,
      present: async () =>
        (await this.deps.copy?.lookup.remote(tx, row.origin, row.mediaId)) !== undefined,
    });
    if (!file.ok) {
      problem(tally, "remote", item, file);
      for (const _ of mine) count(tally, "remote_thumbnail", "skipped");
      return;
    }
    const sha256 = file.sha256;
    const { origin, mediaId } = row;
    page.addRemote(
      {
        ...row,
        mediaLength: row.mediaLength,
        sha256,
        md5: file.md5 ?? null,
        // mxcd's column is NOT NULL; Synapse sets it at insert, so NULL is rare.
        lastAccessTs: row.lastAccessTs ?? row.createdTs,
      },
      missingFromStream(row)
        ? { origin, mediaId, sha256, quarantinedBy: row.quarantinedBy }
        : undefined,
    );
    for (const t of mine) {
      const { key, legacyKey } = remoteThumbnailKeys(row, t);
      await this.#thumbnail(tx, page, t, tally, "remote_thumbnail", key, legacyKey);
    }
  }

  /** Checks (or copies) a thumbnail's file, then adds it to the page. */
  async #thumbnail(
    tx: Tx,
    page: ImportPage,
    t: SynapseThumbnail,
    tally: ImportTally,
    kind: ImportKind,
    key: () => string,
    legacyKey?: () => string,
  ): Promise<void> {
    const item = thumbnailItem(t);
    const file = await this.#file({
      key,
      legacyKey,
      length: t.length,
      present: async () => (await this.deps.copy?.lookup.thumbnail(tx, t)) !== undefined,
    });
    if (!file.ok) {
      problem(tally, kind, item, file);
      return;
    }
    page.addThumbnail(t, kind);
  }

  /**
   * The per-file step. Reference mode: the file must be there at its length
   * (a legacy thumbnail name is copied to the current one beside it), and a
   * quarantined row without a hash gets one. Copy mode: media-copier.ts.
   */
  async #file(spec: FileSpec): Promise<CopyOutcome> {
    if (this.deps.copy) return this.#copy(spec, this.deps.copy);
    let problem = await this.#check(spec.key, spec.length);
    if (problem === "missing" && spec.legacyKey) {
      const legacyProblem = await this.#check(spec.legacyKey, spec.length);
      if (legacyProblem === undefined) {
        if (!this.deps.dryRun) {
          await this.deps.store.write(spec.key(), await this.deps.store.read(spec.legacyKey()));
        }
        problem = undefined;
      } else if (legacyProblem !== "missing") {
        problem = `${legacyProblem} (legacy name)`;
      }
    }
    if (problem) return { ok: false, outcome: "missing", problem };
    const sha256 = spec.row ? await this.#hashOf(spec.row, spec.key) : null;
    return { ok: true, sha256 };
  }

  /** Copy mode's file step: the same key in mxcd's store (a legacy name maps to the current one). */
  async #copy(spec: FileSpec, copy: CopyMode): Promise<CopyOutcome> {
    let destKey: string;
    let sourceKey: string;
    try {
      destKey = spec.key();
      sourceKey = destKey;
      if (spec.legacyKey && !(await copy.copier.sourceHas(destKey))) sourceKey = spec.legacyKey();
    } catch {
      return { ok: false, outcome: "missing", problem: UNSAFE };
    }
    const item = { sourceKey, destKey, length: spec.length, sha256: spec.row?.sha256 ?? null };
    if (this.deps.dryRun) return copy.copier.check(item);
    return copy.copier.copy(item, await spec.present());
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
      return UNSAFE;
    }
    return this.deps.files.check(path, expected);
  }
}

const UNSAFE = "id or origin is not a safe path component";

/** Counts and lists a file that is not imported, under its outcome's column. */
function problem(
  tally: ImportTally,
  kind: ImportKind,
  item: string,
  file: Extract<CopyOutcome, { ok: false }>,
): void {
  (file.outcome === "mismatched" ? mismatched : missing)(tally, kind, item, file.problem);
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
