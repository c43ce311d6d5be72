/**
 * `media-retention` (docs/media.md "Retention"): a recurring job that deletes
 * media by Synapse's `media_retention` rules plus mxcd's absolute age:
 * - `local_media_lifetime`: local media last accessed before now minus it,
 *   or never accessed and created before then;
 * - `local_media_max_age`: local media created before now minus it, however
 *   recently accessed (Synapse #15434);
 * - `remote_media_lifetime`: cached remote media last accessed before now
 *   minus it (a fetch counts as an access).
 * Never deleted: quarantined media (local and remote), protected local
 * media, media that is a current avatar (profile, room member, room; local
 * or remote, from the media-reference index), pending uploads, and URL-cache
 * media (the `url-preview-expiry` job's).
 *
 * Design note: mark, then delete. A batch, in the runner's transaction under
 * the job's lock (one process at a time):
 * 1. deletes the items the previous batch marked (stored in the progress):
 *    through MediaDeletionService, files first (content, then every
 *    thumbnail, on the filesystem or S3), then rows through this
 *    transaction, so caches of every process forget them after the commit;
 *    items quarantined or protected since they were marked are spared;
 * 2. selects the next page of the current rule (a keyset walk), drops the
 *    avatars, and marks the rest by saving them in the progress.
 * So the decision to delete an item commits before any of its files is
 * touched. A crash in step 1 rolls back the rows and leaves the marks: the
 * next batch (here or in another process) deletes the same items again —
 * deleting a missing file counts as done — even if one was read meanwhile.
 * Rows whose files are gone therefore exist only while marks do (`mxcd
 * media retention --dry-run` lists them), and a file never loses its row
 * first. An item whose files could not be deleted keeps its row and is
 * logged; the next pass retries it.
 *
 * A pass walks the enabled rules in order; once every rule is walked and
 * the marks are deleted, the batch reports `idleMs` (`check_interval`).
 */
import type { Tx } from "../db/database.js";
import type { Logger } from "../logging/logger.js";
import type { RemoteFiles } from "../media/media-deletion-service.js";
import type { LocalMediaItem } from "../repositories/media-admin-repository.js";
import {
  type MediaRetentionRepository,
  RETENTION_RULES,
  type RetentionCandidate,
  type RetentionCursor,
  type RetentionRule,
  retentionKey,
} from "../repositories/media-retention-repository.js";
import type { BackgroundJob, BatchContext, BatchResult } from "./background-job.js";

/** The job's name (its row in `background_jobs` and its lock key). */
export const MEDIA_RETENTION = "media-retention";

/**
 * Most items marked (and so deleted) per batch: their files are deleted
 * while the batch's transaction is open (on SQLite, the database's one
 * write lock), and on S3 each is a few requests.
 */
export const MAX_ITEMS_PER_BATCH = 100;

/** `media_retention` in milliseconds; null: the rule is off. */
export interface RetentionSettings {
  readonly localMediaLifetime: number | null;
  readonly remoteMediaLifetime: number | null;
  readonly localMediaMaxAge: number | null;
  /** The pause once a pass is done. */
  readonly checkIntervalMs: number;
}

/** Where the job stands: the rule being walked (index into RETENTION_RULES), and the marks. */
export interface MediaRetentionProgress {
  readonly rule: number;
  readonly after: RetentionCursor | null;
  /** Items selected by the last batch, deleted by the next one. */
  readonly marked: readonly RetentionCandidate[];
}

/** What the job has done since start (`mxcd_media_retention_*` on /metrics). */
export interface MediaRetentionStats {
  readonly deleted: { local: number; remote: number };
  readonly bytes: { local: number; remote: number };
  /** Selected by age but kept: a current avatar, or quarantined/protected after marking. */
  readonly spared: { avatar: number; exempt: number };
  /** Items whose files could not be deleted (logged; retried next pass). */
  failed: number;
  /** Committed batches. */
  batches: number;
  /** Passes finished: every rule walked and every mark deleted. */
  passes: number;
}

/** The slice of MediaDeletionService the job uses. */
export interface RetentionDeletion {
  deleteLocalMediaItemsIn(tx: Tx, items: readonly LocalMediaItem[]): Promise<string[]>;
  purgeRemoteItemsIn<T extends RemoteFiles>(tx: Tx, items: readonly T[]): Promise<T[]>;
}

export interface MediaRetentionDeps {
  readonly settings: RetentionSettings;
  readonly repository: MediaRetentionRepository;
  readonly deletion: RetentionDeletion;
  readonly logger: Pick<Logger, "info">;
  readonly now: () => number;
}

/** True when at least one rule is on (the job is registered only then). */
export function retentionEnabled(settings: RetentionSettings): boolean {
  return RETENTION_RULES.some((rule) => cutoffOf(settings, rule, 0) !== null);
}

/** The time before which `rule` selects media at `now`; null when the rule is off. */
export function cutoffOf(
  settings: RetentionSettings,
  rule: RetentionRule,
  now: number,
): number | null {
  const span =
    rule === "remote_last_access"
      ? settings.remoteMediaLifetime
      : rule === "local_max_age"
        ? settings.localMediaMaxAge
        : settings.localMediaLifetime;
  return span === null ? null : now - span;
}

/** The counts of one batch, logged and added to the stats after its commit. */
interface BatchCounts {
  deletedLocal: number;
  deletedRemote: number;
  bytesLocal: number;
  bytesRemote: number;
  failed: number;
  exempt: number;
  avatar: number;
}

/** The job described above; one instance per process. */
export class MediaRetentionJob implements BackgroundJob<MediaRetentionProgress> {
  readonly name = MEDIA_RETENTION;
  readonly recurring = true;
  readonly initialProgress: MediaRetentionProgress = { rule: 0, after: null, marked: [] };
  readonly stats: MediaRetentionStats = {
    deleted: { local: 0, remote: 0 },
    bytes: { local: 0, remote: 0 },
    spared: { avatar: 0, exempt: 0 },
    failed: 0,
    batches: 0,
    passes: 0,
  };

  constructor(private readonly deps: MediaRetentionDeps) {}

  async runBatch(
    tx: Tx,
    progress: MediaRetentionProgress,
    { batchSize }: BatchContext,
  ): Promise<BatchResult<MediaRetentionProgress>> {
    const counts = await this.#deleteMarked(tx, progress.marked ?? []);
    const processed = counts.deletedLocal + counts.deletedRemote;
    const now = this.deps.now();
    let { rule, after } = progress;
    for (; rule < RETENTION_RULES.length; rule += 1, after = null) {
      const name = RETENTION_RULES[rule]!;
      const cutoff = cutoffOf(this.deps.settings, name, now);
      if (cutoff === null) continue;
      const limit = Math.max(1, Math.min(batchSize, MAX_ITEMS_PER_BATCH));
      const page = await this.deps.repository.candidates(tx, name, cutoff, after, limit);
      const avatars = await this.deps.repository.currentAvatars(tx, page);
      counts.avatar = avatars.size;
      const marked = page.filter((item) => !avatars.has(retentionKey(item)));
      const last = page[page.length - 1];
      const next =
        page.length < limit || !last
          ? { rule: rule + 1, after: null }
          : { rule, after: { ts: last.ts, origin: last.origin, mediaId: last.mediaId } };
      return {
        progress: { ...next, marked },
        processed,
        done: false,
        committed: this.#commit(counts, false),
      };
    }
    // Every rule walked and the last marks deleted: the pass is over.
    return {
      progress: this.initialProgress,
      processed,
      done: false,
      committed: this.#commit(counts, true),
      idleMs: this.deps.settings.checkIntervalMs,
    };
  }

  /** Deletes marked items (step 1 of the module note); returns the batch's counts so far. */
  async #deleteMarked(tx: Tx, marked: readonly RetentionCandidate[]): Promise<BatchCounts> {
    const counts: BatchCounts = {
      ...{ deletedLocal: 0, deletedRemote: 0, bytesLocal: 0, bytesRemote: 0 },
      ...{ failed: 0, exempt: 0, avatar: 0 },
    };
    if (marked.length === 0) return counts;
    const exempt = await this.deps.repository.nowExempt(tx, marked);
    counts.exempt = exempt.size;
    const going = marked.filter((item) => !exempt.has(retentionKey(item)));
    const local = going.filter((item) => item.kind === "local");
    const remote = going.filter((item) => item.kind === "remote");
    const localIds = new Set(
      await this.deps.deletion.deleteLocalMediaItemsIn(
        tx,
        local.map((item) => ({ mediaId: item.mediaId, urlCache: null })),
      ),
    );
    const purged = await this.deps.deletion.purgeRemoteItemsIn(
      tx,
      remote.map((item) => ({ ...item, filesystemId: item.filesystemId ?? "" })),
    );
    for (const item of local.filter((i) => localIds.has(i.mediaId))) {
      counts.deletedLocal += 1;
      counts.bytesLocal += item.length;
    }
    for (const item of purged) {
      counts.deletedRemote += 1;
      counts.bytesRemote += item.length;
    }
    counts.failed = going.length - localIds.size - purged.length;
    return counts;
  }

  /** The post-commit step: counts into the stats, and one structured log line. */
  #commit(counts: BatchCounts, passDone: boolean): () => void {
    return () => {
      const { stats } = this;
      stats.batches += 1;
      if (passDone) stats.passes += 1;
      stats.deleted.local += counts.deletedLocal;
      stats.deleted.remote += counts.deletedRemote;
      stats.bytes.local += counts.bytesLocal;
      stats.bytes.remote += counts.bytesRemote;
      stats.spared.avatar += counts.avatar;
      stats.spared.exempt += counts.exempt;
      stats.failed += counts.failed;
      if (counts.deletedLocal + counts.deletedRemote + counts.failed + counts.exempt > 0) {
        this.deps.logger.info(
          {
            job: this.name,
            deleted_local: counts.deletedLocal,
            deleted_remote: counts.deletedRemote,
            bytes_local: counts.bytesLocal,
            bytes_remote: counts.bytesRemote,
            failed: counts.failed,
            spared_exempt: counts.exempt,
          },
          "media retention deleted media",
        );
      }
    };
  }
}
