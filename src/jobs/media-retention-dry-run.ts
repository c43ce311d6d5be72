/**
 * What the `media-retention` job would delete now (`mxcd media retention
 * --dry-run`, docs/media.md "Retention"): the items its last batch marked
 * and has not deleted yet (an interrupted run), then every item each enabled
 * rule selects, minus current avatars — the job's own queries, read-only,
 * page by page, so memory is bounded by a page whatever the table size.
 */
import type { Db } from "../db/database.js";
import {
  type MediaRetentionRepository,
  RETENTION_RULES,
  type RetentionCandidate,
  type RetentionCursor,
  retentionKey,
} from "../repositories/media-retention-repository.js";
import {
  cutoffOf,
  MAX_ITEMS_PER_BATCH,
  type MediaRetentionProgress,
  type RetentionSettings,
} from "./media-retention-job.js";

/** One item that would go, and why. */
export interface PlannedDeletion extends RetentionCandidate {
  /** True for an item a batch marked and has not deleted yet. */
  readonly marked: boolean;
}

/**
 * Yields what would go, pages of the job's size: first `progress.marked`
 * (the stored progress; none on a fresh database), then each rule's
 * selection at `now`. An item selected by two rules is listed once.
 */
export async function* plannedDeletions(
  db: Db,
  repository: MediaRetentionRepository,
  settings: RetentionSettings,
  now: number,
  progress: MediaRetentionProgress | undefined,
): AsyncGenerator<PlannedDeletion> {
  const exempt = await repository.nowExempt(db, progress?.marked ?? []);
  const marked = (progress?.marked ?? []).filter((item) => !exempt.has(retentionKey(item)));
  for (const item of marked) yield { ...item, marked: true };
  // With both local rules on, an item can match two (old by access and by
  // creation): listed once, at the cost of remembering the ids listed.
  const both = settings.localMediaLifetime !== null && settings.localMediaMaxAge !== null;
  const seen = new Set(marked.map(retentionKey));
  for (const rule of RETENTION_RULES) {
    const cutoff = cutoffOf(settings, rule, now);
    if (cutoff === null) continue;
    let after: RetentionCursor | null = null;
    for (;;) {
      const page = await repository.candidates(db, rule, cutoff, after, MAX_ITEMS_PER_BATCH);
      const avatars = await repository.currentAvatars(db, page);
      for (const item of page) {
        const key = retentionKey(item);
        if (avatars.has(key) || seen.has(key)) continue;
        if (both && item.kind === "local") seen.add(key);
        yield { ...item, marked: false };
      }
      const last = page[page.length - 1];
      if (page.length < MAX_ITEMS_PER_BATCH || !last) break;
      after = { ts: last.ts, origin: last.origin, mediaId: last.mediaId };
    }
  }
}
